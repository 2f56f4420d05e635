"""Reproduction harness for issue #11's heap corruption on SIGTERM (not a test: run it by hand).

    .venv/bin/python tests/stress/sigterm_heap.py --runs 8 --hog          # beside a CPU hog, as on a shared machine
    .venv/bin/python tests/stress/sigterm_heap.py --runs 8 --src /path/to/other/checkout

Each run trains the reported set-up (an image folder of 40 grey 16x16 PNGs, patch 2, MiniLM captions, the tiny
preset with 2 layers, 2 threads) through ``python -m lumina_core.cli train``, sends SIGTERM after the 10th step,
and reports the exit status and any glibc heap message ("corrupted size vs. prev_size", "double free", ...).
Seen here at commit 2b85bf0: 1 abort (exit 134, "corrupted size vs. prev_size while consolidating") in 24 runs
beside a CPU hog, none in 8 runs without it; at ea32b72 none in 8 + 16 runs beside a hog. Rare: hundreds of runs
are needed to tell a fix from luck. ``--torch`` sets ``LUMINA_LINEAR_BACKEND=torch`` (the issue saw
no abort in 2 runs that way). ``--malloc-check`` preloads glibc's ``libc_malloc_debug.so`` with
``MALLOC_CHECK_=3`` and ``MALLOC_PERTURB_=165``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """\
run: {{name: heap, output_dir: {out}, device: cpu}}
model: {{preset: tiny, n_layers: 2}}
tasks:
  - name: grey
    modality: {{name: image, params: {{patch_size: 2, channels: 1, image_size: 16, fid: false}}}}
    data: {{name: image_folder, params: {{root: {images}, size: 16, channels: 1}}, batch_size: 8}}
    conditioning: {{encoder: {{name: minilm, params: {{max_length: 16}}}}, cache: true}}
train: {{max_steps: 100000, log_every: 5, ckpt_every: 50}}
"""
HEAP = re.compile(r"corrupted|double free|free\(\)|malloc\(\)|malloc_consolidate", re.I)


def make_images(root: Path) -> None:
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(root / f"im{i:02d}.png")
        (root / f"im{i:02d}.txt").write_text(f"a grey picture number {i % 7}")


def one_run(work: Path, env: dict[str, str], tag: str) -> tuple[int, str]:
    out = work / f"run_{tag}"
    recipe = work / f"recipe_{tag}.yaml"
    recipe.write_text(RECIPE.format(out=out, images=work / "images"))
    child = subprocess.Popen(
        [sys.executable, "-m", "lumina_core.cli", "train", str(recipe)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work,  # not a checkout: --src wins
    )  # fmt: skip
    for line in child.stdout:
        if line.startswith("step 10/"):
            break
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=600)
    return child.returncode, "; ".join(m.group(0) for m in HEAP.finditer(err))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--hog", action="store_true", help="keep one core busy beside the runs")
    ap.add_argument("--src", help="run another checkout (put first on PYTHONPATH)")
    ap.add_argument("--torch", action="store_true", help="LUMINA_LINEAR_BACKEND=torch")
    ap.add_argument("--malloc-check", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = args.src
    if args.torch:
        env["LUMINA_LINEAR_BACKEND"] = "torch"
    if args.malloc_check:
        lib = next(Path("/").glob("usr/lib/*/libc_malloc_debug.so*"), None)
        env.update(
            {"MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165", **({"LD_PRELOAD": str(lib)} if lib else {})}
        )
    work = Path(tempfile.mkdtemp(prefix="sigterm-heap-"))
    make_images(work / "images")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        aborts = 0
        for k in range(args.runs):
            t0 = time.time()
            code, heap = one_run(work, env, str(k))
            aborts += code == -signal.SIGABRT or code == 134 or bool(heap)
            print(f"run {k}: exit {code} in {time.time() - t0:.0f} s {heap}", flush=True)
        print(f"{aborts} of {args.runs} runs aborted with a heap error")
    finally:
        if hog is not None:
            hog.kill()


if __name__ == "__main__":
    main()

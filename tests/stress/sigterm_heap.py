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
``MALLOC_CHECK_=3`` and ``MALLOC_PERTURB_=165``. Every child runs with ``PYTHONFAULTHANDLER=1`` (all threads'
Python stacks on an abort) and, with ``--core``, an unlimited core size, so an abort leaves ``run_K.err`` and a
``core`` file in the work folder for ``gdb -batch -ex 'thread apply all bt' python core``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
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


def _unlimited_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def one_run(
    work: Path,
    env: dict[str, str],
    tag: str,
    core: bool = False,
    delay: float | None = None,
    cold: bool = False,
) -> tuple[int, str]:
    out = work / f"run_{tag}"
    recipe = work / f"recipe_{tag}.yaml"
    recipe.write_text(RECIPE.format(out=out, images=work / "images"))
    if cold:  # the captions are encoded (MiniLM, the tokenizer's threads) in every run, as on a first run
        env = {**env, "LUMINA_CACHE_DIR": tempfile.mkdtemp(prefix="cache-", dir=work)}
    child = subprocess.Popen(
        [sys.executable, "-m", "lumina_core.cli", "train", str(recipe)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work,  # not a checkout: --src wins
        preexec_fn=_unlimited_core if core else None,
    )  # fmt: skip
    if delay is None:
        for line in child.stdout:
            if line.startswith("step 10/"):
                break
    else:  # any moment once the run is set up: Lightning's start, the steps, a checkpoint save
        for line in child.stdout:
            if "run folder" in line:
                break
        time.sleep(delay)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=600)
    heap = "; ".join(m.group(0) for m in HEAP.finditer(err))
    if heap or child.returncode in (-signal.SIGABRT, 134, -signal.SIGSEGV, 139):
        (work / f"run_{tag}.err").write_text(err)
    return child.returncode, heap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--hog", action="store_true", help="keep one core busy beside the runs")
    ap.add_argument("--src", help="run another checkout (put first on PYTHONPATH)")
    ap.add_argument("--torch", action="store_true", help="LUMINA_LINEAR_BACKEND=torch")
    ap.add_argument("--malloc-check", action="store_true")
    ap.add_argument(
        "--random-time",
        type=float,
        metavar="S",
        help="signal at a uniform time in [0, S) s after the run is set up (a signal in the first 2-3 s comes"
        " before Lightning installs its handler and ends the process at once: exit -15, start-up only)",
    )
    ap.add_argument("--cold", action="store_true", help="an empty cache folder for every run")
    ap.add_argument("--core", action="store_true", help="let an aborted child write a core file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sigterm-heap-"))
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", "LUMINA_CACHE_DIR": str(work / "cache")}
    if args.src:
        env["PYTHONPATH"] = args.src
    if args.torch:
        env["LUMINA_LINEAR_BACKEND"] = "torch"
    if args.malloc_check:
        lib = next(Path("/").glob("usr/lib/*/libc_malloc_debug.so*"), None)
        env.update(
            {"MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165", **({"LD_PRELOAD": str(lib)} if lib else {})}
        )
    make_images(work / "images")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        aborts = 0
        for k in range(args.runs):
            t0 = time.time()
            delay = random.Random(k).uniform(0, args.random_time) if args.random_time else None
            code, heap = one_run(work, env, str(k), core=args.core, delay=delay, cold=args.cold)
            aborts += code == -signal.SIGABRT or code == 134 or bool(heap)
            at = "" if delay is None else f" (signal at {delay:.1f} s)"
            print(f"run {k}: exit {code} in {time.time() - t0:.0f} s{at} {heap}", flush=True)
        print(f"{aborts} of {args.runs} runs aborted with a heap error (evidence in {work})")
    finally:
        if hog is not None:
            hog.kill()


if __name__ == "__main__":
    main()

"""bf16 vs fp32 on the CPU for the shipped tiny recipes: training-step time, sampling time and sampling quality.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/precision.py                 # ~10 min, busy
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/precision.py --quick         # < 2 min
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/precision.py --part train --recipes shapes

One process, one thread. Three settings, interleaved round by round so that a shared machine's load falls on
all of them alike; the figure is the median **process CPU time** (with one thread, what the work costs
whatever else runs):

* ``fp32``: everything in fp32 (``train.precision=32-true``, ``sampling.precision=fp32``);
* ``bf16``: CPU autocast to bf16 with PyTorch's own attention, which runs in bf16
  (``LUMINA_CPU_ATTENTION=auto``);
* ``bf16+fp32-attn``: the same with attention in fp32 inside the bf16 region (:mod:`lumina_core.model.sdpa`,
  the default since this benchmark).

1. ``--part train``: one training step of each recipe as ``lumina train`` takes it (the recipe's built model,
   a real batch of its training data at the recipe's batch size, the task's loss, backward, AdamW) from
   freshly initialised weights.
2. ``--part sample``: sampling time and checker scores of the trained runs of :mod:`shapes_model` and
   :mod:`media_models` under ``sampling.precision`` fp32 / bf16 (same weights, noise, captions), each with the
   recipe's sampler; the RMS difference of the bf16 samples to the fp32 ones is printed beside.

The last line prints the training-step speed-up of ``bf16+fp32-attn`` over ``fp32`` per recipe.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_models import ROOT, generate_tokens, grade, held_out, load, rms  # noqa: E402

RECIPES = {
    "shapes": "recipes/image/shapes_tiny.yaml",
    "tones": "recipes/audio/tones_tiny.yaml",
    "video": "plugins/lumina-video/recipes/moving_shapes_tiny.yaml",
    "melodies": "recipes/music/melodies_tiny.yaml",
}
SETTINGS = ("fp32", "bf16", "bf16+fp32-attn")


def region(setting: str):
    """The autocast context and attention rule of one setting."""
    import contextlib

    from lumina_core.model.sdpa import attention_precision

    stack = contextlib.ExitStack()
    if setting != "fp32":
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    stack.enter_context(attention_precision("auto" if setting == "bf16" else "fp32"))
    return stack


def train_steps(recipe: str, rounds: int, steps_per_round: int = 2) -> dict[str, float]:
    """Median CPU seconds per training step of ``recipe`` under each setting (interleaved rounds)."""
    from lumina_core.config import load_recipe
    from lumina_core.training.build import build_run

    cfg = load_recipe(ROOT / recipe, ["run.output_dir=/nonexistent"])
    parts = build_run(cfg)
    task = parts.task()
    model = parts.model.train()
    data = task.dataset("train")
    bs = task.batch_size
    items = [data[i] for i in range(bs)]
    batch = {"samples": [it["sample"] for it in items], "conditions": [it["condition"] for it in items],
             "meta": [it.get("meta") for it in items]}  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def step(setting: str) -> float:
        c0 = time.process_time()
        with region(setting):
            loss = task.loss(model, batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return time.process_time() - c0

    for s in SETTINGS:  # warm-up: oneDNN primitives, allocator, the conditioner's cache
        step(s)
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(rounds):
        order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
        for s in order:
            times[s] += [step(s) for _ in range(steps_per_round)]
    return {s: statistics.median(v) for s, v in times.items()}


def sample_run(name: str, n: int, rounds: int) -> None:
    """Sampling time and quality of a trained run under fp32 / bf16 / bf16+fp32-attn."""
    from lumina_core.model.sdpa import attention_precision

    if name == "shapes":
        from media_models import Loaded
        from shapes_model import load_shapes

        cfg, model, plugin, enc = load_shapes()
        run = Loaded("shapes", cfg, model, plugin, enc)
        from shapes_model import held_out as shapes_held_out

        data = shapes_held_out(32, n)
        samp = {k: cfg.tasks[0].sampling[k] for k in ("solver", "steps", "cfg_scale")}
        samp["grid"] = dict(cfg.tasks[0].sampling.grid)
    else:
        run = load(name)
        data = held_out(run)
        samp = run.sampling()
        for k in ("precision", "seed"):
            samp.pop(k, None)
    items = [data[i] for i in range(n)]
    cpu: dict[str, list[float]] = {s: [] for s in SETTINGS}
    out: dict[str, tuple] = {}
    for r in range(rounds):
        order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
        for s in order:
            with attention_precision("auto" if s == "bf16" else "fp32"):
                c0 = time.process_time()
                tok, smp = generate_tokens(run, items, batch_size=n, decode=(r == 0),
                                           precision="fp32" if s == "fp32" else "bf16", **samp)
                cpu[s].append(time.process_time() - c0)
            if r == 0:
                out[s] = (tok, smp)
    ref_tok = out["fp32"][0]
    for s in SETTINGS:
        tok, smp = out[s]
        m = grade(run, [x.clamp(-1, 1) for x in smp] if name == "shapes" else smp, items, data)
        keys = [k for k in ("adherence", "pitch_acc", "direction_acc", "fad", "fid") if k in m]
        first = cpu[s][1:] or cpu[s]  # the first round includes oneDNN's one-off kernel generation
        print(f"sample {name:7s} {s:15s} CPU {statistics.median(first):6.2f} s per {n} "
              f"(x{statistics.median(cpu['fp32'][1:] or cpu['fp32']) / statistics.median(first):.2f} vs fp32)  "
              + "  ".join(f"{k} {m[k]:.3f}" for k in keys) + f"  rms to fp32 {rms(tok, ref_tok):.2e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("train", "sample", "both"), default="both")
    ap.add_argument("--recipes", nargs="*", default=list(RECIPES), help=f"of {list(RECIPES)}")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved training rounds (2 steps each)")
    ap.add_argument("--samples", type=int, default=32, help="held-out captions per sampling cell")
    ap.add_argument("--sample-rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shapes and tones, 3 rounds, 8 samples")
    args = ap.parse_args()
    if args.quick:
        args.recipes, args.rounds, args.samples, args.sample_rounds = ["shapes", "tones"], 3, 8, 2
    torch.set_num_threads(1)
    os.environ.setdefault("LUMINA_CACHE_DIR", str(ROOT / "runs" / ".cache"))
    print(f"# CPU bf16 support: {torch.backends.mkldnn.is_available()} (oneDNN); one thread; settings {SETTINGS}")
    speed = {}
    if args.part in ("train", "both"):
        for name in args.recipes:
            t = train_steps(RECIPES[name], args.rounds)
            speed[name] = t["fp32"] / t["bf16+fp32-attn"]
            print(f"train  {name:8s} CPU per step: fp32 {t['fp32'] * 1e3:7.1f} ms  bf16 {t['bf16'] * 1e3:7.1f} ms "
                  f"(x{t['fp32'] / t['bf16']:.2f})  bf16+fp32-attn {t['bf16+fp32-attn'] * 1e3:7.1f} ms "
                  f"(x{speed[name]:.2f})", flush=True)
    if args.part in ("sample", "both"):
        for name in args.recipes:
            if name == "melodies":
                continue  # no trained music run in this benchmark
            try:
                sample_run(name, args.samples, args.sample_rounds)
            except FileNotFoundError as err:
                print(f"sample {name}: skipped: {err}")
    if speed:
        print("training-step speed-up, bf16+fp32-attn vs fp32: "
              + "; ".join(f"{k} {v:.2f}x" for k, v in speed.items()))


if __name__ == "__main__":
    main()

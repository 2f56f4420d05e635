"""Solver x time-grid benchmark: sample error against a tight dopri5 reference, as a function of NFE.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling.py            # train (~2-5 min) + measure
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling.py --reuse    # measure an existing run

1. Trains a small Next-DiT (dim 64, 3 layers) with the real training loop on procedural 1-D "bump"
   sequences (the test plugin ``tests/toy_plugin.py``: class k is a Gaussian bump at a class-dependent place),
   class-conditioned with condition dropout.
2. From the same noise and conditions, integrates the learned (optionally guided) velocity field with every
   fixed-grid solver on every grid at several NFE budgets, and with dopri5 at rtol = atol = 1e-7 in float64
   as the reference; the error is the RMS difference to the reference over all samples' values.
3. Prints a table (rows: solver x grid, columns: NFE) and checks the target: at 10 NFE the best pair is at
   least as close to the reference as uniform Euler at 50 NFE.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the procedural test plugin lives with the tests

SOLVERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
GRIDS = {
    "uniform": {"name": "uniform"},
    "shift(4)": {"name": "shift", "params": {"s": 4.0}},  # released demos: dense near noise (t = 0)
    "shift(0.5)": {"name": "shift", "params": {"s": 0.5}},  # s < 1: dense near data (t = 1)
    "shift(0.25)": {"name": "shift", "params": {"s": 0.25}},
    "sigmoid(4)": {"name": "sigmoid", "params": {"k": 4.0}},  # dense at both ends
    "sigmoid(8)": {"name": "sigmoid", "params": {"k": 8.0}},
}
NFES = (4, 6, 8, 10, 12, 16, 20, 24, 32, 50)


def recipe(out_dir: Path, steps: int, time_sampler: str = "logit_normal"):
    import toy_plugin  # noqa: F401  (registers _test_seq / _test_bumps)
    from omegaconf import OmegaConf

    from lumina_core.config.schema import RecipeConfig

    return OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "bench_sampling", "output_dir": str(out_dir), "device": "cpu", "seed": 0},
            "model": {"dim": 64, "n_layers": 3, "n_heads": 4},
            "tasks": [
                {
                    "name": "bumps",
                    "modality": {"name": "_test_seq", "params": {"channels": 2, "patch": 2, "length": 32}},
                    "data": {
                        "name": "_test_bumps",
                        "params": {"size": 512, "num_classes": 4, "lengths": [32]},
                        "batch_size": 32,
                    },
                    "objective": {"name": "flow_matching", "params": {"time_sampler": time_sampler}},
                    "conditioning": {"encoder": {"name": "class", "params": {"num_classes": 4, "dim": 32}}},
                }
            ],
            "train": {
                "max_steps": steps, "lr": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine",
                "ema_decay": 0.995, "ckpt_every": max(1, steps // 4), "log_every": max(1, steps // 10),
                "preview_every": 0, "threads": 1,
            },
        },
    )  # fmt: skip


def rms(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float((x.double() - y.double()).pow(2).sum()) for x, y in zip(a, b, strict=True))
    return math.sqrt(num / sum(x.numel() for x in a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_sampling"))
    ap.add_argument("--train-steps", type=int, default=600)
    ap.add_argument("--reuse", action="store_true", help="measure the existing run in --out, do not train")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--cfg-scale", type=float, default=1.0)
    ap.add_argument("--time-sampler", default="logit_normal", help="training time sampler (registered name)")
    args = ap.parse_args()

    from lumina_core.sampling import generate
    from lumina_core.training.api import load_run, train

    cfg = recipe(Path(args.out), args.train_steps, args.time_sampler)
    if not args.reuse:
        t0 = time.time()
        train(cfg)
        print(f"trained {args.train_steps} steps in {time.time() - t0:.0f} s")
    model, plugins, encs = load_run(cfg, "last")
    model.double()
    encs["bumps"].double()
    plugin, enc = plugins["bumps"], encs["bumps"]
    conditions = [i % 4 for i in range(args.samples)]

    def run(solver, grid, steps):
        out, nfe = generate(
            model, plugin, enc, "bumps", conditions, steps=steps, solver=solver, grid=grid,
            cfg_scale=args.cfg_scale, seed=1234, return_nfe=True, dtype=torch.float64,
        )  # fmt: skip
        return [s.double() for s in out], nfe

    t0 = time.time()
    ref, ref_nfe = run({"name": "dopri5", "params": {"rtol": 1e-7, "atol": 1e-7}}, "uniform", 1)
    check, _ = run({"name": "dopri5", "params": {"rtol": 1e-9, "atol": 1e-9}}, "uniform", 1)
    print(f"reference: dopri5 rtol=atol=1e-7, {ref_nfe} NFE; its own error vs 1e-9: {rms(ref, check):.2e}")
    scale = math.sqrt(sum(float(x.pow(2).sum()) for x in ref) / sum(x.numel() for x in ref))
    print(f"RMS of the reference samples: {scale:.3f}; cfg_scale {args.cfg_scale}; {args.samples} samples")

    table: dict[tuple[str, str], dict[int, float]] = {}
    for solver, per in SOLVERS.items():
        for gname, grid in GRIDS.items():
            row = {}
            for nfe in NFES:
                if nfe % per:
                    continue
                out, used = run(solver, grid, nfe // per)
                assert used == nfe, (solver, used, nfe)
                row[nfe] = rms(out, ref)
            table[(solver, gname)] = row
    print(f"measured in {time.time() - t0:.0f} s\n")

    header = "| solver | grid | " + " | ".join(f"{n}" for n in NFES) + " |"
    print("RMS error vs the dopri5 reference, by NFE (network evaluations; lower is better)\n")
    print(header)
    print("|" + "---|" * (len(NFES) + 2))
    for (solver, gname), row in table.items():
        cells = [f"{row[n]:.2e}" if n in row else "" for n in NFES]
        print(f"| {solver} | {gname} | " + " | ".join(cells) + " |")

    euler50 = table[("euler", "uniform")][50]
    at10 = {k: r[10] for k, r in table.items() if 10 in r}
    best = min(at10, key=at10.get)
    print(f"\nuniform Euler at 50 NFE: {euler50:.2e}")
    print(f"best pair at 10 NFE: {best[0]} on {best[1]}: {at10[best]:.2e}")
    print(f"target (best@10 <= euler-uniform@50): {'MET' if at10[best] <= euler50 else 'NOT MET'}")
    for budget in (4, 8, 16, 20, 32):
        cands = {k: r[budget] for k, r in table.items() if budget in r}
        b = min(cands, key=cands.get)
        print(f"best at {budget:>2} NFE: {b[0]:>8} on {b[1]:<10} {cands[b]:.2e}")


if __name__ == "__main__":
    main()

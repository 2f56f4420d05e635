"""Solver x time-grid benchmark: sample error against a tight dopri5 reference, as a function of NFE.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling.py            # train (~2-5 min) + measure
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling.py --reuse    # measure an existing run

1. Trains a small Next-DiT (dim 64, 3 layers) with the real training loop on procedural 1-D "bump"
   sequences (the test plugin ``tests/toy_plugin.py``: class k is a Gaussian bump at a class-dependent place),
   class-conditioned with condition dropout.
2. Fits one time grid per entry of FITS (``lumina_core.sampling.fit_time_grid``: the grid that brings the
   solver closest to dopri5 on *calibration* noise drawn from another seed; cached in
   ``<out>/fitted_grids.json``, ``--refit`` to redo).
3. From the same (evaluation) noise and conditions, integrates the learned (optionally guided) velocity field
   with every fixed-grid solver on every grid at several NFE budgets, on the fitted grids, and with dopri5
   at rtol = atol = 1e-7 in float64 as the reference; the error is the RMS difference to the reference over
   all samples' values.
4. Prints a table (rows: solver x grid, columns: NFE) and checks the target: at 10 NFE the best pair is at
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

#: table rows: label -> solver spec (name or {name, params})
SOLVERS = {
    "euler": "euler",
    "midpoint": "midpoint",
    "heun": "heun",
    "heun_edm": "heun_edm",  # Heun with a final Euler step (EDM)
    "rk4": "rk4",
    "ab2": "ab2",
}
GRIDS = {
    "uniform": {"name": "uniform"},
    "shift(4)": {"name": "shift", "params": {"s": 4.0}},  # released demos: dense near noise (t = 0)
    "shift(0.5)": {"name": "shift", "params": {"s": 0.5}},  # s < 1: dense near data (t = 1)
    "sigmoid(4)": {"name": "sigmoid", "params": {"k": 4.0}},  # dense at both ends
}
#: fitted grids (fit_time_grid on calibration noise, judged on the table's noise): label -> (solver, steps)
FITS = {"midpoint": ("midpoint", 5), "ab2": ("ab2", 10)}
CAL_SEED, EVAL_SEED = 7, 1234  # calibration noise is drawn from another seed than the measured samples
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
    ap.add_argument("--cal-samples", type=int, default=96, help="calibration samples for the grid fits")
    ap.add_argument("--fit-iters", type=int, default=20)
    ap.add_argument(
        "--refit", action="store_true", help="fit the grids again even if fitted_grids.json exists"
    )
    ap.add_argument("--plot-dir", default=None, help="where the figure goes (default docs/images/benchmarks)")
    args = ap.parse_args()

    from lumina_core.sampling import (
        build_solver,
        explicit_node,
        fit_time_grid,
        generate,
        guided_velocity,
        token_noise,
    )
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
            cfg_scale=args.cfg_scale, seed=EVAL_SEED, return_nfe=True, dtype=torch.float64,
        )  # fmt: skip
        return [s.double() for s in out], nfe

    t0 = time.time()
    ref, ref_nfe = run({"name": "dopri5", "params": {"rtol": 1e-7, "atol": 1e-7}}, "uniform", 1)
    check, _ = run({"name": "dopri5", "params": {"rtol": 1e-9, "atol": 1e-9}}, "uniform", 1)
    print(f"reference: dopri5 rtol=atol=1e-7, {ref_nfe} NFE; its own error vs 1e-9: {rms(ref, check):.2e}")
    scale = math.sqrt(sum(float(x.pow(2).sum()) for x in ref) / sum(x.numel() for x in ref))
    print(f"RMS of the reference samples: {scale:.3f}; cfg_scale {args.cfg_scale}; {args.samples} samples")

    fitted = fit_grids(args, model, plugin, enc, guided_velocity, token_noise, fit_time_grid)
    grids = dict(GRIDS)

    table: dict[tuple[str, str], dict[int, tuple[float, int]]] = {}
    for label, spec in SOLVERS.items():
        solver = build_solver(spec)
        for gname, grid in grids.items():
            row = {}
            for nfe in NFES:
                steps = solver.steps_for_nfe(nfe) or solver.steps_for_nfe(nfe - 1)
                if steps is None:
                    continue
                out, used = run(spec, grid, steps)
                assert used == solver.nfe(steps), (label, used, steps)
                row[nfe] = (rms(out, ref), used)
            table[(label, gname)] = row
    for label, values in fitted.items():
        spec = SOLVERS[label]
        out, used = run(spec, explicit_node(values), None)
        table[(label, "fitted")] = {used: (rms(out, ref), used)}
    print(f"measured in {time.time() - t0:.0f} s\n")

    header = "| solver | grid | " + " | ".join(f"{n}" for n in NFES) + " |"
    print("RMS error vs the dopri5 reference, by NFE (network evaluations; lower is better)")
    print("(* = one NFE fewer than the column: a final Euler step makes the count odd)\n")
    print(header)
    print("|" + "---|" * (len(NFES) + 2))
    for (label, gname), row in table.items():
        cells = [f"{row[n][0]:.2e}" + ("*" if row[n][1] < n else "") if n in row else "" for n in NFES]
        print(f"| {label} | {gname} | " + " | ".join(cells) + " |")
    for label, values in fitted.items():
        print(f"fitted grid for {label} ({len(values) - 1} steps): {[round(v, 4) for v in values]}")

    euler50 = table[("euler", "uniform")][50][0]
    at10 = {k: r[10][0] for k, r in table.items() if 10 in r}
    best = min(at10, key=at10.get)
    print(f"\nuniform Euler at 50 NFE: {euler50:.2e}")
    print(f"best pair at <= 10 NFE: {best[0]} on {best[1]}: {at10[best]:.2e}")
    print(f"target (best@10 <= euler-uniform@50): {'MET' if at10[best] <= euler50 else 'NOT MET'}")
    fixed10 = {k: v for k, v in at10.items() if k[1] != "fitted"}
    bf = min(fixed10, key=fixed10.get)
    print(f"best pair at <= 10 NFE on a closed-form grid: {bf[0]} on {bf[1]}: {fixed10[bf]:.2e}")
    for budget in (4, 8, 16, 20, 32):
        cands = {k: r[budget][0] for k, r in table.items() if budget in r}
        b = min(cands, key=cands.get)
        print(f"best at {budget:>2} NFE: {b[0]:>16} on {b[1]:<10} {cands[b]:.2e}")
    print("figure:", *plot_table(table, euler50, args))


def plot_table(table: dict, euler50: float, args) -> tuple[Path, Path]:
    """The table as a figure: one panel per time grid (the fitted grids in their own panel), one line per
    solver, error against the NFE each cell really used, and uniform Euler at 50 NFE as the line to beat."""
    from plotting import line_panels

    panels: dict[str, dict] = {}
    for (label, gname), row in table.items():
        cells = sorted(row.values(), key=lambda c: c[1])
        panels.setdefault(gname, {})[label] = ([c[1] for c in cells], [c[0] for c in cells])
    return line_panels(
        panels,
        "sampling_error_vs_nfe",
        title=f"RMS error vs the dopri5 reference (cfg {args.cfg_scale:g}, {args.samples} samples)",
        xlabel="NFE (network evaluations)",
        ylabel="RMS error",
        logx=True,
        logy=True,
        hlines={"euler, uniform, 50 NFE": euler50},
        note="benchmarks/sampling.py: Next-DiT dim 64, 3 layers, on 1-D bumps; CPU, machine shared",
        out_dir=args.plot_dir,
    )


def fit_grids(args, model, plugin, enc, guided_velocity, token_noise, fit_time_grid) -> dict:
    """Fit (or load from ``<out>/fitted_grids.json``) one grid per FITS entry, on calibration noise drawn
    from CAL_SEED (the table's samples use EVAL_SEED), against dopri5 at 1e-7 from the same noise."""
    import json

    path = Path(args.out) / "fitted_grids.json"
    key = f"cal_seed={CAL_SEED},samples={args.cal_samples},iters={args.fit_iters},cfg={args.cfg_scale}"
    if path.exists() and not args.refit:
        stored = json.loads(path.read_text())
        if stored.get("key") == key and set(stored["grids"]) == set(FITS):
            print(f"fitted grids loaded from {path}")
            return stored["grids"]
    n = args.cal_samples
    conditions = [i % 4 for i in range(n)]
    layout = plugin.layout([tuple(plugin.default_shape())] * n)
    cond = enc.encode(conditions, device="cpu")
    uncond = None
    if args.cfg_scale != 1.0:
        uncond = enc.encode([enc.null_value] * n, device="cpu")
    v = guided_velocity(model, "bumps", layout, cond, uncond, args.cfg_scale)
    x0 = token_noise(layout, CAL_SEED).double()
    for p in model.parameters():
        p.requires_grad_(False)
    grids = {}
    for label, (solver, steps) in FITS.items():
        t0 = time.time()
        grids[label], hist = fit_time_grid(
            v, x0, steps, SOLVERS[solver], init=GRIDS["shift(0.5)"], iters=args.fit_iters, lr=0.1,
            return_history=True,
        )  # fmt: skip
        print(
            f"fitted {label} grid ({steps} steps) in {time.time() - t0:.0f} s: calibration RMS "
            f"{math.sqrt(hist[0]):.2e} (shift(0.5)) -> {math.sqrt(min(hist)):.2e}"
        )
    path.write_text(json.dumps({"key": key, "grids": grids}, indent=1))
    return grids


if __name__ == "__main__":
    main()

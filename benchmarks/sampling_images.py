"""Solver x time grid x NFE on the trained shapes image model: error against dopri5 and checker scores.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling_images.py     # ~10 min on 2 busy cores

Needs the trained shapes model of :mod:`shapes_model` (``runs/issue18_shapes``). Unlike
``benchmarks/sampling.py`` (a 1-D toy task), this integrates the text-to-image model the recipe ships, with its
guidance (CFG 3), from the same noise and held-out captions for every cell:

* error: RMS difference (over all pixel values in [-1, 1]) to a tight reference, dopri5 at rtol = atol = 1e-5
  (its own distance to rtol = atol = 1e-6 is printed);
* checker scores: the shapes checker's adherence (chance 1/60) and the FID-style score against real renders.

The last lines name the cheapest cell whose adherence is within 0.02 of the reference's and the best cell
at 10 NFE: what ``recipes/image/shapes_tiny.yaml``'s ``sampling`` section is set from.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sampling_table import NFES, SOLVERS, plot_error_vs_nfe, print_table, sweep  # noqa: E402
from shapes_model import ROOT, generate_for, grade, held_out, load_shapes  # noqa: E402


def rms(a, b) -> float:
    num = sum(float((x.double() - y.double()).pow(2).sum()) for x, y in zip(a, b, strict=True))
    return math.sqrt(num / sum(x.numel() for x in a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nfes", type=int, nargs="*", default=list(NFES))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_sampling_images.json"))
    ap.add_argument("--plot", action="store_true", help="write the figure through benchmarks/plotting.py")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, model, plugin, enc = load_shapes()
    cfg_scale = float(cfg.tasks[0].sampling.cfg_scale)
    data = held_out(32, args.samples)
    items = [data[i] for i in range(args.samples)]

    def run(solver, grid, steps):
        out, _ = generate_for(
            model,
            plugin,
            enc,
            items,
            (3, 32, 32),
            batch_size=args.samples,
            solver=solver,
            grid=grid,
            steps=steps,
            cfg_scale=cfg_scale,
        )
        return [s.clamp(-1, 1) for s in out]

    ref = run({"name": "dopri5", "params": {"rtol": 1e-5, "atol": 1e-5}}, "uniform", 1)
    tight = run({"name": "dopri5", "params": {"rtol": 1e-6, "atol": 1e-6}}, "uniform", 1)
    ref_m = grade(plugin, ref, items, data)
    print(
        f"# {args.samples} held-out captions, CFG {cfg_scale}; reference dopri5 1e-5: adherence "
        f"{ref_m['adherence']:.3f} fid {ref_m['fid']:.2f}; its distance to dopri5 1e-6: {rms(ref, tight):.2e}",
        flush=True,
    )

    def cell(name, gname, grid, steps, nfe):
        out = run(name, grid, steps)
        m = grade(plugin, out, items, data)
        c = {"rms": rms(out, ref), "adherence": m["adherence"], "fid": m["fid"]}
        print(
            f"{name:9s} {gname:11s} {nfe:3d} NFE: rms {c['rms']:.2e} adherence "
            f"{m['adherence']:.3f} fid {m['fid']:6.2f}",
            flush=True,
        )
        return c

    table = sweep(SOLVERS, args.nfes, cell)
    Path(args.out).write_text(json.dumps({"reference": ref_m, "table": table}, indent=2))

    print()
    print_table(table, args.nfes, lambda c: f"{c['rms']:.3f} / {c['adherence']:.2f}")
    ok = [(n, row[n]["rms"], key) for key, row in table.items() for n in row
          if row[n]["adherence"] >= ref_m["adherence"] - 0.02]  # fmt: skip
    cheapest = min(ok) if ok else None
    at10 = {key: row[10]["rms"] for key, row in table.items() if 10 in row}
    best10 = min(at10, key=at10.get) if at10 else None
    if best10:
        print(
            f"best at 10 NFE (rms): {best10}: rms {at10[best10]:.3e}, adherence "
            f"{table[best10][10]['adherence']:.3f}"
        )
    if cheapest:
        print(
            f"cheapest cell within 0.02 adherence of the reference: {cheapest[2]} at {cheapest[0]} NFE "
            f"(rms {cheapest[1]:.3e})"
        )
    if args.plot:
        plot_error_vs_nfe(
            table,
            "sampling_images_error_vs_nfe",
            "shapes model: RMS error vs dopri5 (CFG 3)",
            "RMS error",
            "benchmarks/sampling_images.py, 2-core CPU shared with other jobs",
        )


if __name__ == "__main__":
    main()

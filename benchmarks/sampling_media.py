"""Solver x time grid x NFE on the trained audio (tones) model: error against dopri5 and checker scores.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling_media.py --model tones      # ~15 min, busy
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/sampling_media.py --model tones --quick

The sibling of ``benchmarks/sampling_images.py`` for the runs of :mod:`media_models` (``--model video`` works
the same way on the video model). From the same noise and held-out captions for every cell, with the recipe's
guidance (CFG 3 for tones):

* error: RMS difference of the final model-space tokens (for tones: power-compressed, normalised mel values,
  about unit variance) to a tight reference, dopri5 at rtol = atol = 1e-5 (its own distance to 1e-6 is
  printed). Measured before decoding, so Griffin-Lim's phase estimate plays no part in it;
* checker scores of the decoded samples (tones: pitch accuracy, adherence, FAD-style; video: direction
  accuracy, adherence).

The last lines name the recipe's current sampler's cell, the lowest error at the recipe's NFE budget and the
cheapest cell at most as far from the reference as the recipe's: what the recipe's ``sampling`` is set from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_models import ROOT, RUNS, generate_tokens, grade, held_out, load, rms  # noqa: E402
from sampling_table import (  # noqa: E402  (cheapest_within, grid_label: this module's names too)
    NFES,
    SOLVERS,
    cheapest_within,
    grid_label,
    plot_error_vs_nfe,
    print_table,
    sweep,
)

HEADLINE = {"tones": "pitch_acc", "video": "direction_acc"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(RUNS), default="tones")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--nfes", type=int, nargs="*", default=list(NFES))
    ap.add_argument("--solvers", nargs="*", default=list(SOLVERS))
    ap.add_argument(
        "--score-nfes", type=int, nargs="*", help="decode and score only at these NFE (default: all)"
    )
    ap.add_argument("--quick", action="store_true", help="8 captions, euler/midpoint/ab2 at 8 and 16 NFE")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="JSON of every cell (default runs/bench_sampling_<model>.json)")
    ap.add_argument("--plot", action="store_true", help="write the figure through benchmarks/plotting.py")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.nfes, args.solvers = 8, [8, 16], ["euler", "midpoint", "ab2"]
    torch.set_num_threads(args.threads)
    from lumina_core.sampling import build_solver

    run = load(args.model)
    headline = HEADLINE[args.model]
    recipe = run.sampling()
    cfg_scale = recipe["cfg_scale"]
    data = held_out(run)
    items = [data[i] for i in range(args.samples)]

    def sample(solver, grid, steps, decode=True):
        return generate_tokens(
            run,
            items,
            batch_size=args.samples,
            decode=decode,
            solver=solver,
            grid=grid,
            steps=steps,
            cfg_scale=cfg_scale,
        )

    ref_tok, ref_samples = sample({"name": "dopri5", "params": {"rtol": 1e-5, "atol": 1e-5}}, "uniform", 1)
    tight, _ = sample({"name": "dopri5", "params": {"rtol": 1e-6, "atol": 1e-6}}, "uniform", 1, decode=False)
    ref_m = grade(run, ref_samples, items, data)
    print(
        f"# {args.model}: {args.samples} held-out captions, CFG {cfg_scale}; reference dopri5 1e-5: {headline} "
        f"{ref_m[headline]:.3f} adherence {ref_m['adherence']:.3f}"
        + (f" fad {ref_m['fad']:.2f}" if "fad" in ref_m else "")
        + f"; its distance to dopri5 1e-6: {rms(ref_tok, tight):.2e}",
        flush=True,
    )

    def cell(name, gname, grid, steps, nfe):
        scored = args.score_nfes is None or nfe in args.score_nfes
        tok, out = sample(name, grid, steps, decode=scored)
        m = grade(run, out, items, data) if scored else {headline: float("nan"), "adherence": float("nan")}
        c = {"rms": rms(tok, ref_tok), **m}
        print(
            f"{name:9s} {gname:11s} {nfe:3d} NFE: rms {c['rms']:.2e} {headline} {m[headline]:.3f} "
            f"adherence {m['adherence']:.3f}" + (f" fad {m['fad']:6.2f}" if "fad" in m else ""),
            flush=True,
        )
        return c

    out_path = Path(args.out or ROOT / "runs" / f"bench_sampling_{args.model}.json")

    def save(table):  # after each solver: a long run keeps what it measured
        out_path.write_text(json.dumps({"reference": ref_m, "table": table}, indent=2))

    table = sweep(args.solvers, args.nfes, cell, after_solver=save)

    print(f"\nCells: RMS error / {headline} / adherence")
    print_table(table, args.nfes, lambda c: f"{c['rms']:.3f} / {c[headline]:.2f} / {c['adherence']:.2f}")

    solver0 = recipe["solver"] if isinstance(recipe["solver"], str) else recipe["solver"]["name"]
    nfe0 = build_solver(solver0).nfe(recipe["steps"]) if hasattr(build_solver(solver0), "nfe") else None
    key0 = f"{solver0} | {grid_label(recipe['grid'] or {})}"
    if nfe0 is not None and key0 in table and nfe0 in table[key0]:
        r0 = table[key0][nfe0]
        print(
            f"recipe's sampler: {key0} at {nfe0} NFE: rms {r0['rms']:.3e}, {headline} {r0[headline]:.3f}, "
            f"adherence {r0['adherence']:.3f}"
        )
        at = {key: row[nfe0]["rms"] for key, row in table.items() if nfe0 in row}
        best = min(at, key=at.get)
        print(
            f"lowest error at {nfe0} NFE: {best}: rms {at[best]:.3e}, {headline} {table[best][nfe0][headline]:.3f}"
        )
        cheap = cheapest_within(table, r0["rms"])
        if cheap:
            print(
                f"cheapest cell at most as far from the reference as the recipe's: {cheap[2]} at {cheap[0]} NFE "
                f"(rms {cheap[1]:.3e})"
            )
    if args.plot:
        plot_error_vs_nfe(
            table,
            f"sampling_{args.model}_error_vs_nfe",
            f"{args.model} model: RMS error vs dopri5",
            "RMS error (model space)",
            "benchmarks/sampling_media.py, 2-core CPU shared with other jobs",
        )


if __name__ == "__main__":
    main()

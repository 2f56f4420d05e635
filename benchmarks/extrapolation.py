"""Resolution extrapolation, measured: the shapes model trained at 32x32 sampled larger, per RoPE scaling.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/extrapolation.py                # ~30 min, 2 busy cores
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/extrapolation.py --samples 8 --sizes 64   # a look

Needs the trained shapes model of :mod:`shapes_model` (``runs/issue18_shapes``: 32x32 pixels, patch 4, so
8x8 training positions). For every size (48, 64, 96 and the non-square 32x64 pixels by default) and every
registered built-in RoPE scaling (none, PI, NTK, the NTK-by-parts and the paper's frequency-aware forms, the
released and the paper's time-aware forms, the released stepwise form), with and without proportional
attention, it generates one image per held-out caption from the same noise with the recipe's sampler
(midpoint, 10 steps, CFG 3) and grades them: the shapes checker's adherence (shape, colour and position all as
captioned; chance 1/60) and the FID-style score against real renders of the same captions at that size (the
feature network resizes to 32x32, so it judges content, not resolution). Scale factors are derived per axis
from the training extent (``scale=None``). The last lines name the default the table picks: the cell with
the best mean adherence over the sizes (ties: lower mean FID).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes_model import ROOT, generate_for, grade, held_out, load_shapes  # noqa: E402

KINDS = ("none", "pi", "ntk", "freq_aware", "freq_aware_paper", "time_aware", "time_aware_paper",
         "time_aware_stepwise")  # fmt: skip
SIZES = ((48, 48), (64, 64), (96, 96), (32, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=32, help="held-out captions per cell")
    ap.add_argument("--sizes", nargs="*", help="sizes to run, as 64 or 32x64 (default 48 64 96 32x64)")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_extrapolation.json"))
    ap.add_argument("--plot", action="store_true", help="write the figure through benchmarks/plotting.py")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in (s.split("x") * 2)[:2]) for s in args.sizes] if args.sizes else list(SIZES)
    cfg, model, plugin, enc = load_shapes()
    samp = {k: cfg.tasks[0].sampling[k] for k in ("solver", "steps", "cfg_scale")}
    samp["grid"] = dict(cfg.tasks[0].sampling.grid)
    print(f"# shapes model trained at 32x32 (8x8 patches); sampler {samp}; {args.samples} captions per cell; "
          f"threads {args.threads}", flush=True)

    results: dict[str, dict[str, dict[str, float]]] = {}
    data = held_out(32, args.samples)
    items = [data[i] for i in range(args.samples)]
    samples, _ = generate_for(model, plugin, enc, items, (3, 32, 32), **samp)
    base = grade(plugin, samples, items, data)
    print(f"trained size 32x32, no scaling: adherence {base['adherence']:.3f}  fid {base['fid']:.2f}", flush=True)
    start = time.perf_counter()
    for h, w in sizes:
        data = held_out(h, args.samples) if h == w else _nonsquare(h, w, args.samples)
        items = [data[i] for i in range(args.samples)]
        for kind in args.kinds:
            for prop in (False, True):
                scaling = {"name": kind, "params": {"proportional_attention": prop}}
                samples, _ = generate_for(model, plugin, enc, items, (3, h, w), rope_scaling=scaling, **samp)
                m = grade(plugin, samples, items, data)
                cell = f"{kind}{' +prop' if prop else ''}"
                results.setdefault(cell, {})[f"{h}x{w}"] = {"adherence": m["adherence"], "fid": m["fid"]}
                print(f"{h}x{w} {cell:26s} adherence {m['adherence']:.3f}  fid {m['fid']:7.2f}   "
                      f"[{time.perf_counter() - start:.0f} s]", flush=True)
        Path(args.out).write_text(json.dumps({"trained": base, "cells": results}, indent=2))

    cols = [f"{h}x{w}" for h, w in sizes]
    print("\n| scaling | " + " | ".join(cols) + " | mean adherence | mean FID |")
    print("|---|" + "---|" * (len(cols) + 2))
    ranked = []
    for cell, per in results.items():
        adh = statistics.mean(per[c]["adherence"] for c in cols)
        fid = statistics.mean(per[c]["fid"] for c in cols)
        ranked.append((-adh, fid, cell))
        body = " | ".join(f"{per[c]['adherence']:.2f} / {per[c]['fid']:.1f}" for c in cols)
        print(f"| {cell} | {body} | {adh:.3f} | {fid:.2f} |")
    ranked.sort()
    print(f"\ntrained size 32x32: adherence {base['adherence']:.3f} / fid {base['fid']:.2f}")
    print(f"default chosen (best mean adherence, then FID): {ranked[0][2]} "
          f"(adherence {-ranked[0][0]:.3f}, fid {ranked[0][1]:.2f})")
    if args.plot:
        from plotting import line_plot

        series = {cell: (list(range(len(cols))), [per[c]["adherence"] for c in cols])
                  for cell, per in results.items() if "+prop" not in cell}
        line_plot(series, "extrapolation_adherence", title="shapes model trained at 32x32: adherence by size",
                  xlabel="size: " + ", ".join(f"{i}={c}" for i, c in enumerate(cols)), ylabel="adherence",
                  hlines={"trained size": base["adherence"]},
                  note="benchmarks/extrapolation.py, 2-core CPU shared with other jobs")


def _nonsquare(h: int, w: int, n: int):
    """Held-out captions with real images stretched to ``h x w``: positions stay relative to the image (the
    checker reads them that way) and the checker's templates are fitted to the blob's bounding box, so a
    stretched circle is still a circle to it."""
    import torch.nn.functional as F

    square = held_out(max(h, w), n)

    class Stretched:
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict:
            it = dict(square[i])
            it["sample"] = F.interpolate(it["sample"][None], size=(h, w), mode="area")[0]
            return it

        def score(self, samples, items):
            return square.score(samples, items)

    return Stretched()


if __name__ == "__main__":
    main()

"""Time-aware context drop: speed and quality cost, beside the undropped model with the same weights.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/context_drop.py            # full run (~10 min)
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/context_drop.py --quick    # 4x tokens only, < 1 min

Needs the trained shapes model of :mod:`shapes_model` (``runs/issue18_shapes``; its training command is in
that module). One process, one set of weights; every measurement alternates plain and dropped runs.

1. Forward time of the trained trunk at t = 0 (every layer drops; pooling 2x2, 75 % of the keys dropped) at
   1x, 2x and 4x two token counts: the shapes model's own training count (8x8 = 64 tokens per image: 8x8, 8x16,
   16x16 patches) and a reference count of 1024 tokens (32x32, 32x64, 64x64 patches: the regime the paper's
   claim is about, where attention is most of the work). Median process CPU time over repeats (one thread, so
   other jobs on a shared machine do not count; median wall time is printed beside it), speed-up =
   plain / dropped.
2. Full-sampling time (the recipe's sampler and CFG) at 1x, 2x and 4x both token counts - the training
   count with 16 captions, the 1024-token reference count with ``--ref-captions`` (2) captions, so that 4x
   (64x64 patches = 4096 tokens) fits in minutes - with the default time-aware schedule (layer j of n drops
   while t < (n - j) / n) and with every layer dropping over the whole range. ``--sampling-only`` runs this
   part alone.
3. Quality cost: the shapes checker's adherence and the FID-style score at the trained size (32 px) and at
   2x (64 px, with PI RoPE scaling, the pick of ``benchmarks/extrapolation.py``), plain vs dropped, from the
   same noise and captions.

The last line prints the forward speed-up at 4x tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes_model import generate_for, grade, held_out, load_shapes  # noqa: E402

DEFAULT = {"factor": 2}  # the layer schedule (module default)
EVERY_LAYER = {"factor": 2, "schedule": "all"}


def token_batch(plugin, gh: int, gw: int, batch: int):
    layout = plugin.layout([(3, gh * plugin.multiple, gw * plugin.multiple)] * batch)
    g = torch.Generator().manual_seed(0)
    return layout.with_tokens(torch.randn(layout.tokens.shape, generator=g))


def time_forward(model, plugin, enc, grid: tuple[int, int], batch: int, repeats: int) -> dict[str, float]:
    """Median process CPU seconds and wall seconds of one forward pass at t = 0, plain and with context drop
    (alternating). With one thread, CPU time is what the pass costs, whatever else runs on the machine."""
    x = token_batch(plugin, *grid, batch)
    cond = enc.encode(["a red circle on the left"] * batch, device="cpu")
    t = torch.zeros(batch)
    cpu: dict[str, list[float]] = {"plain": [], "drop": []}
    wall: dict[str, list[float]] = {"plain": [], "drop": []}
    with torch.no_grad():
        model(x, t, cond, context_drop=DEFAULT)  # warm-up (allocator, oneDNN primitives)
        model(x, t, cond)
        for r in range(repeats):
            order = ("plain", "drop") if r % 2 == 0 else ("drop", "plain")
            for name in order:
                c0, w0 = time.process_time(), time.perf_counter()
                model(x, t, cond, context_drop=DEFAULT if name == "drop" else None)
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    out = {f"cpu_{k}": statistics.median(v) for k, v in cpu.items()}
    out |= {f"wall_{k}": statistics.median(v) for k, v in wall.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="forward speed at 4x tokens only (< 1 min)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=64, help="samples per quality cell")
    ap.add_argument("--plot", action="store_true", help="write the figure through benchmarks/plotting.py")
    ap.add_argument("--rope-2x", default="pi", help="RoPE scaling at 2x the trained size (extrapolation.py's pick)")
    ap.add_argument("--quality-only", action="store_true", help="skip the timings")
    ap.add_argument("--sizes", type=int, nargs="*", default=[32, 64], help="quality: image sides")
    ap.add_argument("--sampling-only", action="store_true", help="full-sampling times only (both token counts)")
    ap.add_argument("--ref-captions", type=int, default=2, help="captions per full sampling at the reference count")
    ap.add_argument("--sampling-repeats", type=int, default=3, help="alternating rounds of full sampling")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, model, plugin, enc = load_shapes()
    spec = plugin.adapter_spec()
    g = int(spec.train_extent[0])  # 8 patches per side
    print(f"# shapes model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, trained on "
          f"{g}x{g} = {g * g} tokens; threads {args.threads}; context drop {DEFAULT} (pool 2x2, t = 0)")

    regimes = {"training count": g, "reference count 1024": 32}
    if args.quality_only or args.sampling_only:
        regimes = {}
    speed4: dict[str, tuple[int, float]] = {}
    rows = []
    for label, side in regimes.items():
        batch = 8 if side <= 8 else 1
        for mult, grid in ((1, (side, side)), (2, (side, 2 * side)), (4, (2 * side, 2 * side))):
            if args.quick and mult != 4:
                continue
            tm = time_forward(model, plugin, enc, grid, batch, 5 if args.quick else args.repeats)
            plain, drop = tm["cpu_plain"], tm["cpu_drop"]
            n = grid[0] * grid[1]
            rows.append((label, mult, n, batch, plain, drop))
            print(f"forward  {label:22s} {mult}x  {n:5d} tokens x {batch}: CPU plain {plain * 1e3:8.1f} ms  "
                  f"drop {drop * 1e3:8.1f} ms  speed-up {plain / drop:.2f}x  (wall "
                  f"{tm['wall_plain'] / tm['wall_drop']:.2f}x)", flush=True)
            if mult == 4:
                speed4[label] = (n, plain / drop)

    samp = {k: cfg.tasks[0].sampling[k] for k in ("solver", "steps", "cfg_scale")}
    samp["grid"] = dict(cfg.tasks[0].sampling.grid)
    sampling4: dict[str, tuple[int, float]] = {}
    if not args.quick and not args.quality_only:
        print(f"\n# full sampling (the recipe's sampler {samp}), process CPU seconds, median of "
              f"{args.sampling_repeats} alternating rounds")
        for label, side, n_cap in (("training count", g, 16), ("reference count 1024", 32, args.ref_captions)):
            items = [held_out(32, n_cap)[i] for i in range(n_cap)]
            for mult, grid in ((1, (side, side)), (2, (side, 2 * side)), (4, (2 * side, 2 * side))):
                shape = (3, grid[0] * plugin.multiple, grid[1] * plugin.multiple)
                runs: dict[str, list[float]] = {}
                for _name, drop in (("plain", None), ("layers", DEFAULT), ("every layer", EVERY_LAYER)):
                    # warm-up at this size (oneDNN primitives, allocator): two steps, not timed
                    generate_for(model, plugin, enc, items, shape, batch_size=n_cap, context_drop=drop,
                                 **{**samp, "steps": 2})
                for _ in range(args.sampling_repeats):  # alternate the variants; process CPU time (one thread)
                    for name, drop in (("plain", None), ("layers", DEFAULT), ("every layer", EVERY_LAYER)):
                        c0 = time.process_time()
                        generate_for(model, plugin, enc, items, shape, batch_size=n_cap, context_drop=drop, **samp)
                        runs.setdefault(name, []).append(time.process_time() - c0)
                t = {name: statistics.median(v) for name, v in runs.items()}
                print(f"sampling {label:22s} {mult}x {grid[0] * grid[1]:5d} tokens x {n_cap}: plain "
                      f"{t['plain']:.2f} s  drop(layers) {t['layers']:.2f} s ({t['plain'] / t['layers']:.2f}x)  "
                      f"drop(every layer) {t['every layer']:.2f} s ({t['plain'] / t['every layer']:.2f}x)", flush=True)
                if mult == 4:
                    sampling4[label] = (grid[0] * grid[1], t["plain"] / t["layers"])

    if not args.quick and not args.sampling_only:
        print(f"\n# quality cost: {args.samples} held-out captions per cell, same noise; adherence (chance 0.017), "
              f"FID-style (lower is better); RoPE scaling beyond 32 px: {args.rope_2x}")
        for size in args.sizes:
            data = held_out(size, args.samples)
            items = [data[i] for i in range(args.samples)]
            line = []
            rope = {"name": args.rope_2x} if size > 32 else None
            for name, drop in (("plain", None), ("layers", DEFAULT), ("every layer", EVERY_LAYER)):
                samples, _ = generate_for(
                    model, plugin, enc, items, (3, size, size), context_drop=drop, rope_scaling=rope, **samp
                )
                m = grade(plugin, samples, items, data)
                line.append(f"{name}: adherence {m['adherence']:.3f} fid {m.get('fid', float('nan')):.2f}")
            print(f"quality {size} px: " + " | ".join(line), flush=True)

    if args.plot and rows:
        from plotting import line_plot

        series = {}
        for label in regimes:
            pts = [(n, p / d) for lab, _, n, _, p, d in rows if lab == label]
            series[label] = ([p[0] for p in pts], [p[1] for p in pts])
        line_plot(series, "context_drop_forward_speedup", title="context drop 2x2 at t = 0: forward speed-up",
                  xlabel="tokens per image", ylabel="plain / dropped", logx=True, hlines={"target 1.8x": 1.8},
                  note="benchmarks/context_drop.py, 2-core CPU shared with other jobs, 1 thread")
    if sampling4:
        parts = [f"{s:.2f}x at {n} tokens ({label})" for label, (n, s) in sampling4.items()]
        print("full-sampling speed-up at 4x tokens, layers schedule: " + "; ".join(parts))
    if speed4:
        parts = [f"{s:.2f}x at {n} tokens ({label})" for label, (n, s) in speed4.items()]
        print("forward speed-up at 4x tokens: " + "; ".join(parts))


if __name__ == "__main__":
    main()

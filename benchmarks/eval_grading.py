"""``lumina eval``'s grading, side by side: each sample graded once (now) vs the set graded and then each sample
again for its verdict (before), on the samples of a trained run.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/eval_grading.py recipes/multiview/scenes_16px.yaml \
        runs/multiview_scenes_16px_plucker
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/eval_grading.py recipes/image/shapes_tiny.yaml \
        runs/issue18_shapes --num 64

Loads the recipe and the run trained from it (its last checkpoint), generates for the first ``--num`` held-out items of
its first task once (the recipe's sampler), then grades those same samples both ways ``--repeats`` times,
alternating, and prints each way's median time, the ratio, and whether the two give the same scores and the
same per-sample verdicts. Only grading is timed: generation is the same for both and is done once.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path


def before(plugin, val, samples, items):
    """What ``evaluate`` + ``write_scored_samples`` did: the set's scores, then ``score([x], [item])`` each."""
    scores = plugin.evaluate(samples, items, val)
    return scores, [dict(val.score([x], [it])) for x, it in zip(samples, items, strict=True)]


def now(plugin, val, samples, items):
    """What they do now (:class:`lumina_core.training.verdicts.VerdictRecorder`)."""
    from lumina_core.training.verdicts import VerdictRecorder

    recorder = VerdictRecorder(val, samples, items)
    scores = plugin.evaluate(samples, items, recorder.dataset)
    return scores, recorder.verdicts


def _close(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12)
        for k in a
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", help="the recipe the run was trained from")
    ap.add_argument("run", help="the trained run folder (checkpoints/)")
    ap.add_argument("--num", type=int, default=32, help="held-out items to generate for and grade")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from lumina_core.config.loader import load_recipe
    from lumina_core.data.stream import first_items
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.api import load_run

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    cfg = load_recipe(args.recipe, [f"run.output_dir={run_dir}"])
    run = load_run(cfg, ckpt_io.resolve_weights("last", run_dir))
    task = run.task()
    val = task.dataset("val")
    items = first_items(val, args.num)
    t0 = time.perf_counter()
    samples = task.generate(
        run.model, [it.get("condition") for it in items], task.shapes_of(items), device="cpu"
    )
    print(f"# {run_dir} task {task.name!r}: {len(items)} samples generated in {time.perf_counter() - t0:.1f} s; "
          f"checker {type(getattr(val, 'dataset', val)).__name__}, score_is_mean="
          f"{bool(getattr(val, 'score_is_mean', False))}", flush=True)  # fmt: skip

    times: dict[str, list[float]] = {"before": [], "now": []}
    results = {}
    for _ in range(args.repeats):
        for name, way in (("before", before), ("now", now)):
            t0 = time.perf_counter()
            results[name] = way(task.plugin, val, samples, items)
            times[name].append(time.perf_counter() - t0)
    (s0, v0), (s1, v1) = results["before"], results["now"]
    same_scores = _close(s0, s1)
    same_verdicts = len(v0) == len(v1) and all(_close(a, b) for a, b in zip(v0, v1, strict=True))
    t_before, t_now = statistics.median(times["before"]), statistics.median(times["now"])
    print(f"grading {len(items)} samples, median of {args.repeats}: before {t_before:.3f} s, now {t_now:.3f} s, "
          f"before / now = {t_before / t_now:.2f}x")  # fmt: skip
    print(f"same scores: {same_scores}; same verdicts: {same_verdicts}")


if __name__ == "__main__":
    main()

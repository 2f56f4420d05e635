"""Tasks that share content (issue #25): does one trunk trained on both beat the same trunk on each alone?

    PYTHONPATH=. python benchmarks/multitask_transfer.py --seeds 0 1 --jobs 2 --plot
    PYTHONPATH=. python benchmarks/multitask_transfer.py --seeds 0 1 --reuse --plot     # tables of finished runs

The recipe (default ``recipes/multitask/digits_draw_read_tiny.yaml``: drawing digits by class and reading
them, on the same real digits) runs under ``train.mixing: all``, so in ``N`` composed steps every task has
``N`` steps of its own. Against it, per seed, each task alone: the same recipe file with only that task, the
same trunk (``model.context_dim`` pinned), seed, learning rate, warm-up, cosine schedule over the same
``N`` steps, EMA, batch size, sampling and evaluation. Each run is trained and scored by the worker of
``benchmarks/multitask.py`` (one process per run, ``nice -n 10``); ``--curve-every K`` also writes a
checkpoint every ``K`` steps and scores it, so each task's checker can be drawn against its own steps, composed
and alone (the schedule is the full run's: the step-``k`` point is not a run of ``k`` steps).

Headline scores (``benchmarks/multitask.py``'s ``HEADLINE``): ``draw``: ``digit_acc``, how often an RBF SVM
fitted on the real training digits reads each generated digit as the one asked for (297 held-out labels,
chance 0.1); ``read``: accuracy on the 297 held-out digits (chance 0.1); ``draw_any`` (unconditional drawing,
``recipes/multitask/digits_few_labels_tiny.yaml``): ``digit_precision``, the share of generated digits as close
to a real training digit as 95 % of real held-out digits are (label-free; real digits score about 0.95).
Results: ``--json`` (default ``benchmarks/results/multitask_transfer.json``); ``--plot``:
``docs/images/benchmarks/multitask_transfer_curve`` (``--figure NAME`` for another recipe's, so the default
one is not overwritten).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import multitask as mt  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_RECIPE = "recipes/multitask/digits_draw_read_tiny.yaml"
DEFAULT_JSON = "benchmarks/results/multitask_transfer.json"


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """``({run name: recipe}, {seed: {"composed": run, "alone": {task: run}, "counts": {task: steps}}})``."""
    out = Path(args.out)
    runs: dict[str, Any] = {}
    groups: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        name = f"composed_s{seed}"
        overrides = [f"run.seed={seed}", f"train.threads={args.threads}", f"run.output_dir={out / name}"]
        if args.steps:
            overrides.append(f"train.max_steps={args.steps}")
        cfg = mt.load(args.recipe, [*overrides, *args.override])
        if str(cfg.train.mixing) != "all":
            raise ValueError(
                f"{args.recipe}: expected train.mixing: all (every task every step, so each task's own steps equal "
                f"the run's); got {cfg.train.mixing!r}"
            )
        counts = mt.task_step_counts(cfg, int(cfg.train.max_steps))
        dim = mt.trunk_context_dim(cfg)
        runs[name] = cfg
        alone = {}
        for task, n in counts.items():
            run = f"alone_{task}_s{seed}"
            runs[run] = mt.single_task_recipe(cfg, task, n, dim, out / run)
            alone[task] = run
        groups[seed] = {"composed": name, "alone": alone, "counts": counts}
    return runs, groups


def curve_steps(steps: int, every: int) -> list[int]:
    """``every, 2 every, ...`` below ``steps``, then ``steps`` (the last checkpoint)."""
    return [*range(every, steps, every), steps] if every > 0 else [steps]


def read_curves(runs: Mapping[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    """``{run: {step: metrics}}`` from each run's ``curve.json`` (runs without one are left out)."""
    out = {}
    for name, cfg in runs.items():
        f = Path(cfg.run.output_dir) / "curve.json"
        if f.is_file():
            out[name] = {int(k): v for k, v in json.loads(f.read_text()).items()}
    return out


def _head(metrics: Mapping[str, float], task: str) -> float | None:
    value = metrics.get(f"{task}/{mt.HEADLINE[task][0]}")
    return None if value is None else float(value)


def rows(results: Mapping[str, Any], groups: Mapping[int, Any]) -> list[dict[str, Any]]:
    """Per task and seed: the headline score composed and alone, and their ratio."""
    out = []
    for seed, g in groups.items():
        for task, alone in g["alone"].items():
            c = _head(results[g["composed"]]["metrics"], task)
            a = _head(results[alone]["metrics"], task)
            out.append({"task": task, "seed": seed, "steps": g["counts"][task], "composed": c, "alone": a})
    return out


def table(rs: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one row per task and seed, then the mean over seeds per task."""
    lines = [
        "| task | score | seed | steps | composed | alone | composed - alone | composed / alone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tasks = list(dict.fromkeys(r["task"] for r in rs))
    for task in tasks:
        mine = [r for r in rs if r["task"] == task]
        for r in mine:
            lines.append(
                f"| {task} | {mt.HEADLINE[task][0]} | {r['seed']} | {r['steps']} | {r['composed']:.3f} | "
                f"{r['alone']:.3f} | {r['composed'] - r['alone']:+.3f} | {r['composed'] / r['alone']:.3f}x |"
            )
        if len(mine) > 1:
            c = statistics.mean(r["composed"] for r in mine)
            a = statistics.mean(r["alone"] for r in mine)
            lines.append(
                f"| {task} | {mt.HEADLINE[task][0]} | **mean** | | **{c:.3f}** | **{a:.3f}** | **{c - a:+.3f}** | "
                f"**{c / a:.3f}x** |"
            )
    return "\n".join(lines)


def curve_table(curves: Mapping[str, Any], groups: Mapping[int, Any]) -> str:
    """Markdown: per task, the headline score at each curve step, composed vs alone, mean over seeds."""
    lines = ["| task | step | composed | alone | composed - alone |", "|---|---|---|---|---|"]
    for task, (comp, alone) in _mean_curves(curves, groups).items():
        for (step, c), (_, a) in zip(comp, alone, strict=True):
            lines.append(f"| {task} | {step} | {c:.3f} | {a:.3f} | {c - a:+.3f} |")
    return "\n".join(lines)


def _mean_curves(
    curves: Mapping[str, Any], groups: Mapping[int, Any]
) -> dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]]:
    """``{task: (composed [(step, mean score)], alone [...])}``: means over the seeds' runs that have curves,
    at the steps every one of those runs scored."""
    out = {}
    tasks = list(next(iter(groups.values()))["counts"])
    for task in tasks:
        kinds = {
            "composed": [g["composed"] for g in groups.values() if g["composed"] in curves],
            "alone": [g["alone"][task] for g in groups.values() if g["alone"][task] in curves],
        }
        if not kinds["composed"] or not kinds["alone"]:
            return {}
        steps = sorted(set.intersection(*(set(curves[r]) for runs in kinds.values() for r in runs)))
        series = [
            [(s, statistics.mean(_head(curves[r][s], task) for r in runs)) for s in steps]  # type: ignore[misc]
            for runs in kinds.values()
        ]
        out[task] = (series[0], series[1])
    return out


DEFAULT_FIGURE = "multitask_transfer_curve"
DEFAULT_TITLE = "drawing and reading digits: one trunk for both vs each alone"


def figure(
    curves: Mapping[str, Any],
    groups: Mapping[int, Any],
    note: str,
    out_dir: str | None = None,
    stem: str = DEFAULT_FIGURE,
    title: str = DEFAULT_TITLE,
) -> Any:
    """One panel per task: its checker against its own steps, composed (solid) and alone (dashed), per seed
    (thin) and their mean (thick)."""
    from plotting import line_panels

    panels: dict[str, dict[str, Any]] = {}
    styles: dict[str, dict[str, Any]] = {}
    tasks = list(next(iter(groups.values()))["counts"])
    for task in tasks:
        head = mt.HEADLINE[task][0]
        series = {}
        for kind, style in (("composed", {"linestyle": "-"}), ("alone", {"linestyle": "--"})):
            for seed, g in groups.items():
                run = g["composed"] if kind == "composed" else g["alone"][task]
                if run not in curves:
                    continue
                pts = sorted(curves[run].items())
                label = f"{kind}, seed {seed}"
                series[label] = ([s for s, _ in pts], [_head(m, task) for _, m in pts])
                styles[label] = {**style, "linewidth": 1.2, "alpha": 0.8}
        panels[f"{task} ({head})"] = series
    wrapped = "\n".join(textwrap.wrap(note, 190))  # a long command would widen the figure
    return line_panels(
        panels, stem, title=title,
        xlabel="steps of the task (the same in both runs)", ylabel="held-out score (higher is better)",
        styles=styles, note=wrapped, out_dir=out_dir,
    )  # fmt: skip


# -- runs stopped before their end (a shared machine's budget): score the curve checkpoints they left -------------
def score_stopped(spec_file: str | Path) -> dict[int, dict[str, float]]:
    """Score every curve checkpoint of the run of ``spec_file`` (``<out>/<run>.spec.json``) that its
    ``curve.json`` does not hold yet, with the recipe's checkers (EMA weights); write and return the curve."""
    from omegaconf import OmegaConf

    from lumina_core.training import api
    from lumina_core.training import checkpoint as ckpt_io

    cfg = OmegaConf.create(json.loads(Path(spec_file).read_text())["recipe"])
    run_dir = Path(cfg.run.output_dir)
    out = run_dir / "curve.json"
    points = {int(k): v for k, v in json.loads(out.read_text()).items()} if out.is_file() else {}
    for ck in sorted(p for p in (run_dir / "curve").glob("step_*") if p.is_dir()):
        step = int(json.loads((ck / ckpt_io.META_FILE).read_text())["step"])
        if step not in points:
            points[step] = api.evaluate(cfg, ck)
    out.write_text(json.dumps({str(k): v for k, v in sorted(points.items())}, indent=2) + "\n")
    return points


def score_all_stopped(runs: Mapping[str, Any], args: argparse.Namespace) -> None:
    """:func:`score_stopped` for every run of the plan, ``args.jobs`` processes at a time (``nice``)."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(mt.ROOT)}
    pending, active = list(runs), []
    while pending or active:
        while pending and len(active) < max(1, args.jobs):
            name = pending.pop(0)
            spec = Path(args.out) / f"{name}.spec.json"
            cmd = ["nice", "-n", str(args.nice), sys.executable, __file__, "--score-run", str(spec)]
            active.append((name, subprocess.Popen(cmd, cwd=mt.ROOT, env=env)))
        time.sleep(1.0)
        for entry in list(active):
            if entry[1].poll() is not None:
                active.remove(entry)
                if entry[1].returncode != 0:
                    raise SystemExit(f"scoring the curve of {entry[0]} failed (exit {entry[1].returncode})")


def rows_at_common_step(
    curves: Mapping[str, Any], groups: Mapping[int, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """The last curve step that every run of the plan reached, and :func:`rows` of the scores there."""
    names = [g["composed"] for g in groups.values()] + [
        r for g in groups.values() for r in g["alone"].values()
    ]
    missing = [n for n in names if n not in curves]
    if missing:
        raise FileNotFoundError(
            f"no curve.json for {missing}: score the stopped runs first (--score-stopped)"
        )
    step = max(set.intersection(*(set(curves[n]) for n in names)))
    results = {n: {"metrics": curves[n][step]} for n in names}
    return step, [{**r, "steps": step} for r in rows(results, groups)]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument(
        "--steps", type=int, default=None, help="composed steps = each task's (default: the recipe's)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--curve-every", type=int, default=100, help="score a checkpoint every K steps (0: the last only)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--out", default="runs/bench_multitask_transfer")
    p.add_argument("--override", nargs="*", default=[], help="more key=value overrides of the recipe")
    p.add_argument("--reuse", action="store_true", help="read the finished runs in --out instead of training")
    p.add_argument("--skip-done", action="store_true", help="keep runs of --out already trained and scored")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="RUN",
        help="train only these runs of the plan (to split it across processes); --reuse then tabulates",
    )  # fmt: skip
    p.add_argument(
        "--score-stopped", action="store_true",
        help="runs stopped before their end: score the curve checkpoints they left, tabulate at the last step all reached",
    )  # fmt: skip
    p.add_argument("--score-run", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--json", default=DEFAULT_JSON, help="write the results here ('' for nowhere)")
    p.add_argument("--plot", action="store_true", help="draw the curve figure (benchmarks/plotting.py)")
    p.add_argument(
        "--figure", default=DEFAULT_FIGURE,
        help="the figure's file name, without extension, under docs/images/benchmarks/ (another recipe: another name)",
    )  # fmt: skip
    p.add_argument("--title", default=DEFAULT_TITLE, help="the figure's title")
    args = p.parse_args(argv)
    if args.score_run:
        score_stopped(args.score_run)
        return {}
    runs, groups = plan(args)
    steps = int(next(iter(runs.values())).train.max_steps)
    args.curve = curve_steps(steps, int(args.curve_every))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    before = mt.machine()
    if args.only:
        unknown = sorted(set(args.only) - set(runs))
        if unknown:
            raise ValueError(f"--only: no run(s) {unknown} in the plan; its runs: {', '.join(runs)}")
        mt.launch({k: v for k, v in runs.items() if k in args.only}, args)
        return {}
    if args.score_stopped:
        score_all_stopped(runs, args)
        curves = read_curves(runs)
        stopped_at, rs = rows_at_common_step(curves, groups)
        results: dict[str, Any] = {}
    else:
        if not args.reuse:
            mt.launch(runs, args)
        results = mt.collect(runs)
        curves = read_curves(runs)
        rs = rows(results, groups)
        stopped_at = None
    command = "PYTHONPATH=. python benchmarks/multitask_transfer.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    saved = {
        "recipe": args.recipe,
        "steps": steps,
        "stopped_at": stopped_at,  # --score-stopped: the step the table is at (the schedule is still `steps` long)
        "seeds": args.seeds,
        "command": command.strip(),
        "started": started,
        "threads": args.threads,
        "jobs": args.jobs,
        "machine": {"before": before, "after": mt.machine()},
        "rows": rs,
        "curves": {k: {str(s): v for s, v in c.items()} for k, c in curves.items()},
        "runs": results,
    }
    print(table(rs))
    if curves:
        print("\n" + curve_table(curves, groups))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")
        print("results:", args.json)
    if args.plot and curves:
        print("figure:", *figure(curves, groups, mt.note_of(saved), stem=args.figure, title=args.title))
    return saved


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:  # bad input: one paragraph, exit 2
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

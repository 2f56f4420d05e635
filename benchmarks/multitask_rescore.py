"""Score the runs of a ``benchmarks/multitask.py`` folder again on more held-out items (issue #25).

The benchmark scores each task on the recipe's held-out set (shapes: 128 captions, tones: 64, points: 64), where
one standard error of the image task's adherence near 0.6 is about 0.04 and a composed/alone ratio carries
about 0.07 of noise; the point clouds' 1-NNA moves by 1.6 points per sample. This script takes the finished runs
(their last checkpoints, EMA weights, as the benchmark scored them) and scores them on ``--samples`` held-out
items per task instead, with the same sampling settings and seeds, so the ratio to each task alone can be read
against its own noise:

    PYTHONPATH=. python benchmarks/multitask_rescore.py --out runs/mt4000_s0 --samples 512 tones=256 points=256 \
        --set points:data.val_params.emd=false --json benchmarks/results/multitask_4000_seed0_rescored.json

(``emd=false``: the point clouds' EMD matrices grow with the square of the items - three 256 x 256 matrices of
exact assignments are tens of minutes on a CPU core - and neither the headline nor the 1-NNA compared here uses
them; the Chamfer ones are kept.)

For each composed run of ``--out`` and each task, the alone run with the same number of that task's steps
(``alone_<task>_<steps>``) is the comparison. Every item is the same for both (the first ``N`` items of the
held-out split; the sample seed of each item is the same), so the headline score's difference is also taken
item by item: the mean of ``verdict_composed - verdict_alone`` over the items and its standard error
``sd / sqrt(N)`` (a paired comparison; the two runs' own standard errors ``sd / sqrt(N)`` are printed too).
Set metrics (FID-style, FAD-style, 1-NNA, and the point clouds' nearest-reference class accuracy, whose
per-item verdicts do not average to the score) have no paired comparison and are printed as they come.

``--alone-from FILE`` takes the alone runs' scores from an earlier ``--json`` of this script (scored on the same
``--samples``) instead of scoring alone runs of ``--out``: a new composition method on a fresh clone is
compared with the alone runs the results folder already holds, without training them again. The scores are
the ones the same checkpoints would give again on the same CPU (the same items, sample seeds and sampler); on
another CPU the products may run through other kernels, which moves a score like a change of seed, so the
script says when the file's CPU is not this one (or not named: files from before it kept the model). The item-by-item
comparison needs the alone runs' per-item verdicts; files from before ``--json`` kept them have none, and their
rows have no item-by-item column.

The held-out split is made larger by the task's size key in ``data.val_params`` (``length``, ``size`` or
``num_items``, whichever the recipe sets); ``--set TASK:KEY=VALUE`` sets any other key of a task. The scores go
to ``<rescore-dir>/<run>/metrics.json`` and the samples with their verdicts to ``<rescore-dir>/<run>/eval``;
the run folders themselves are only read.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import multitask as mt  # noqa: E402  (benchmarks/ is not a package)

#: keys of ``data.val_params`` that set the held-out split's size, in the datasets of the three-modality recipe
SIZE_KEYS = ("length", "size", "num_items")
ALONE = re.compile(r"^alone_(?P<task>.+)_(?P<steps>\d+)$")


def samples_of(entries: Sequence[str]) -> dict[str, int]:
    """``["512", "points=256"]`` -> ``{"*": 512, "points": 256}`` (``*``: every task not named)."""
    out: dict[str, int] = {}
    for entry in entries:
        task, sep, value = entry.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 2:
            raise ValueError(
                f"--samples {entry!r}: expected N or TASK=N with N >= 2 (a standard error needs two items)"
            )
        out[task if sep else "*"] = n
    return out


def rescored_recipe(run_dir: Path, samples: Mapping[str, int], extra: Sequence[str], out_dir: Path) -> Any:
    """The run's recorded recipe (``config.yaml``) with each task scored on ``samples[task]`` (else
    ``samples["*"]``) held-out items, the ``extra`` ``TASK:KEY=VALUE`` settings applied, and ``out_dir`` as the
    run folder the scores go to."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config.yaml")
    for task in cfg.tasks:
        n = samples.get(str(task.name), samples.get("*"))
        if n is None:
            raise ValueError(f"--samples names no count for task {task.name!r} (give N, or {task.name}=N)")
        task.eval.num_samples = int(n)
        val = task.data.get("val_params") or {}
        keys = [k for k in SIZE_KEYS if k in val]
        if len(keys) != 1:
            raise ValueError(
                f"{run_dir}: task {task.name!r} has data.val_params {dict(val)}; expected exactly one of the size keys "
                f"{', '.join(SIZE_KEYS)} to enlarge the held-out split to {n} items. Set it with "
                f"--set {task.name}:data.val_params.<key>={n}"
            )
        task.data.val_params[keys[0]] = max(int(val[keys[0]]), int(n))
    names = [str(t.name) for t in cfg.tasks]
    for entry in extra:
        task, _, assignment = entry.partition(":")
        key, sep, value = assignment.partition("=")
        if not (task and sep):
            raise ValueError(f"--set {entry!r}: expected TASK:KEY=VALUE")
        if task not in names:  # a task of the composed run that this (alone) run does not have
            continue
        # the value is read as a recipe override's is (YAML: false, 3, [1, 2], or a plain string)
        OmegaConf.update(cfg.tasks[names.index(task)], key, OmegaConf.from_dotlist([f"v={value}"]).v)
    cfg.run.output_dir = str(out_dir)
    return cfg


def item_verdicts(eval_dir: Path, key: str) -> list[float] | None:
    """Each scored item's verdict on ``key``, in item order, from the evaluation's ``manifest.json`` (several
    files of one item, e.g. a WAV and its spectrogram, share its index prefix); None when it has none."""
    manifest = eval_dir / "manifest.json"
    if not manifest.is_file():
        return None
    by_index: dict[int, float] = {}
    for entry in json.loads(manifest.read_text())["files"]:
        verdict = entry.get("verdict") or {}
        if key in verdict:
            by_index.setdefault(int(Path(entry["file"]).name.split("_", 1)[0]), float(verdict[key]))
    return [by_index[i] for i in sorted(by_index)] if by_index else None


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, se


def rescore(args: argparse.Namespace) -> dict[str, Any]:
    """Score every run of ``args.out`` (or ``args.runs``) that is not scored yet at ``args.samples``; return
    ``{run: {"metrics", "task_steps", "verdicts": {task: [...]}}}``."""
    from lumina_core.training import api
    from lumina_core.training import checkpoint as ckpt_io

    samples = samples_of(args.samples)
    label = "_".join(f"{k}{v}" if k != "*" else str(v) for k, v in sorted(samples.items()))
    out, where = Path(args.out), Path(args.rescore_dir or Path(args.out) / f"rescored_{label}")
    runs = args.runs or sorted(
        p.name for p in out.iterdir() if (p / "config.yaml").is_file() and p.name != where.name
    )
    results: dict[str, Any] = {}
    for run in runs:
        run_dir, dest = out / run, where / run
        ck = ckpt_io.resolve_weights("last", run_dir)
        meta = json.loads((ck / ckpt_io.META_FILE).read_text())
        record = dest / "metrics.json"
        if not (record.is_file() and json.loads(record.read_text()).get("step") == meta.get("step")):
            print(
                f"scoring {run} (step {meta.get('step')}) on {' '.join(args.samples)} items per task",
                flush=True,
            )
            api.evaluate(rescored_recipe(run_dir, samples, args.set, dest), ck)
        saved = json.loads(record.read_text())
        verdicts = {}
        for task_dir in sorted((dest / "eval").iterdir()):
            head = mt.HEADLINE.get(task_dir.name, (None,))[0]
            got = item_verdicts(task_dir, head) if head else None
            reported = saved["metrics"].get(f"{task_dir.name}/{head}")
            # a set metric's per-item "verdict" (the item scored alone) is not its share of the score: keep the
            # verdicts only where their mean is the reported score
            if got and reported is not None and abs(statistics.fmean(got) - float(reported)) < 1e-6:
                verdicts[task_dir.name] = got
        results[run] = {
            "metrics": saved["metrics"],
            "task_steps": saved.get("task_steps"),
            "verdicts": verdicts,
        }
    return results


def with_alone_runs(
    results: Mapping[str, Any], saved: Mapping[str, Any], samples: Mapping[str, int]
) -> dict[str, Any]:
    """``results`` plus the alone runs (``alone_<task>_<steps>``) of ``saved``, an earlier ``--json`` of this
    script scored on the same ``samples`` (ValueError otherwise); a run scored here is kept as it is."""
    if saved.get("samples") != dict(samples):
        raise ValueError(f"scored on {saved.get('samples')} items per task, not on {dict(samples)} as here")
    out = dict(results)
    for run, rec in (saved.get("runs") or {}).items():
        if ALONE.match(run) and run not in out:
            out[run] = {"metrics": rec["metrics"], "task_steps": rec.get("task_steps"), "verdicts": rec.get("verdicts", {})}
    return out


def machine_note(path: str, saved: Mapping[str, Any]) -> str | None:
    """A line when the alone scores of ``saved`` (file ``path``) were taken on another CPU than this one (or on
    one the file does not name): then the comparison mixes machines, whose kernels differ."""
    then, now = (saved.get("machine") or {}).get("cpu_model"), mt.cpu_model()
    if then == now:
        return None
    return (
        f"note: the alone scores of {path} were taken on {then or 'a CPU the file does not name'}, these on {now}: "
        "the products run through other kernels there, so composed and alone differ by machine as well"
    )


def pairings(
    results: Mapping[str, Any], pairs: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str, str, int]]:
    """``(run, partner, task, steps)`` to compare: each composed run's task with the alone run of as many of
    that task's steps (``alone_<task>_<steps>``); with ``pairs``, each given ``(run, partner)`` on every task
    both have (e.g. one process against two)."""
    if pairs:
        return [
            (a, b, task, int(steps))
            for a, b in pairs
            for task, steps in (results[a].get("task_steps") or {}).items()
            if task in (results[b].get("task_steps") or {})
        ]
    alone = {}
    for run in results:
        m = ALONE.match(run)
        if m:
            alone[(m["task"], int(m["steps"]))] = run
    out = []
    for run, rec in results.items():
        if ALONE.match(run) or not rec.get("task_steps"):
            continue
        for task, steps in rec["task_steps"].items():
            if (task, int(steps)) in alone:
                out.append((run, alone[(task, int(steps))], task, int(steps)))
    return out


def comparisons(results: Mapping[str, Any], pairs: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """One row per pairing (:func:`pairings`) and task: the headline and distribution metrics of the run and
    its partner (composed and alone), the ratio, and the item-by-item difference of the headline with its
    standard error."""
    rows = []
    for run, partner, task, steps in pairings(results, pairs):
        rec = results[run]
        head = mt.HEADLINE.get(task, (None,))[0]
        dist = mt.DISTRIBUTION.get(task)
        a_m, b_m = rec["metrics"], results[partner]["metrics"]
        row: dict[str, Any] = {
            "composed": run, "alone": partner, "task": task, "steps": int(steps), "headline": head,
            "composed_score": a_m.get(f"{task}/{head}"), "alone_score": b_m.get(f"{task}/{head}"),
            "distribution": dist, "composed_dist": a_m.get(f"{task}/{dist}"), "alone_dist": b_m.get(f"{task}/{dist}"),
        }  # fmt: skip
        va, vb = rec["verdicts"].get(task), results[partner]["verdicts"].get(task)
        if va and vb and len(va) == len(vb):
            row["n"] = len(va)
            row["composed_mean"], row["composed_se"] = _mean_se(va)
            row["alone_mean"], row["alone_se"] = _mean_se(vb)
            row["paired_diff"], row["paired_se"] = _mean_se([x - y for x, y in zip(va, vb, strict=True)])
            row["composed_better"] = sum(x > y for x, y in zip(va, vb, strict=True))
            row["alone_better"] = sum(x < y for x, y in zip(va, vb, strict=True))
        rows.append(row)
    return rows


def table(rows: Sequence[Mapping[str, Any]], first: str = "composed", second: str = "alone") -> str:
    """Markdown: first / second (ratio) of the headline with each one's standard error, the paired
    difference +- its standard error, the items each run gets right where the other does not, and the
    distribution metric first / second. The columns say ``composed`` / ``alone`` by default; ``--pair`` runs
    are any two runs, so there they say ``run`` / ``partner``."""
    lines = [
        f"| {first} run | task (steps) | n | headline {first} / {second} (ratio) | paired difference | items better: {first} / {second} | distribution {first} / {second} |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        a, b = r["composed_score"], r["alone_score"]
        head = f"{a:.3f} / {b:.3f} ({mt._ratio(a, b)})" if a is not None and b is not None else "-"
        if "paired_diff" in r:
            head = f"{a:.3f} +- {r['composed_se']:.3f} / {b:.3f} +- {r['alone_se']:.3f} ({mt._ratio(a, b)})"
            diff = f"{r['paired_diff']:+.3f} +- {r['paired_se']:.3f}"
            better = f"{r['composed_better']} / {r['alone_better']}"
        else:
            diff = better = "-"
        da, db = r["composed_dist"], r["alone_dist"]
        dist = f"{r['distribution']} {da:.3f} / {db:.3f}" if da is not None and db is not None else "-"
        lines.append(
            f"| {r['composed']} | {r['task']} {r['headline']} ({r['steps']}) | {r.get('n', '-')} | {head} | {diff} | {better} | {dist} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="a benchmarks/multitask.py --out folder of finished runs")
    ap.add_argument(
        "--samples",
        nargs="+",
        default=["512"],
        metavar="N|TASK=N",
        help="held-out items per task: N for every task, TASK=N for one (default 512)",
    )
    ap.add_argument("--runs", nargs="*", default=None, help="only these runs of --out (default: all)")
    ap.add_argument("--set", nargs="*", default=[], metavar="TASK:KEY=VALUE", help="more settings of a task")
    ap.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        metavar=("RUN", "PARTNER"),
        help="compare these two runs (repeatable) instead of each composed run with the alone runs",
    )
    ap.add_argument(
        "--rescore-dir", default=None, help="where the scores go (default: <out>/rescored_<samples>)"
    )
    ap.add_argument(
        "--alone-from",
        nargs="*",
        default=[],
        metavar="JSON",
        help="take the alone runs' scores from these earlier --json files (the same --samples) instead of --out",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", default="", help="write the runs' scores and the comparison rows here")
    mt.add_judging_args(ap)
    args = ap.parse_args(argv)
    try:
        mt.apply_judging(args.headline, args.distribution)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        samples_of(args.samples)
    except ValueError as exc:
        ap.error(str(exc))
    if not Path(args.out).is_dir():
        ap.error(
            f"--out {args.out}: no such folder (a benchmarks/multitask.py --out folder of finished runs)"
        )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for entry in args.set:
        if ":" not in entry or "=" not in entry:
            ap.error(f"--set {entry!r}: expected TASK:KEY=VALUE")
    earlier = {}  # read (and checked) before the scoring, which takes minutes
    for path in args.alone_from:
        try:
            earlier[path] = json.loads(Path(path).read_text())
            with_alone_runs({}, earlier[path], samples_of(args.samples))
        except (OSError, ValueError) as exc:
            ap.error(f"--alone-from {path}: {exc}")
    results = rescore(args)
    for path, saved_runs in earlier.items():
        results = with_alone_runs(results, saved_runs, samples_of(args.samples))
        note = machine_note(path, saved_runs)
        if note:
            print(note)
    rows = comparisons(results, [tuple(p) for p in args.pair])
    print(table(rows, *(("run", "partner") if args.pair else ())))
    saved = {
        "command": "PYTHONPATH=. python benchmarks/multitask_rescore.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "samples": samples_of(args.samples), "rows": rows,
        "runs": {k: {"metrics": v["metrics"], "task_steps": v["task_steps"], "verdicts": v["verdicts"]}
                 for k, v in results.items()},
        "machine": mt.machine(),
    }  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")
    return saved


if __name__ == "__main__":
    main()

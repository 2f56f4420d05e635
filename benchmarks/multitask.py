"""Multi-task vs each task alone (issue #12): one trunk trained on image, audio and point clouds together,
against the same trunk trained on each task by itself for the same number of steps of that task.

    PYTHONPATH=. python benchmarks/multitask.py --quick --jobs 4          # smoke run: 240 steps, small evals
    PYTHONPATH=. python benchmarks/multitask.py --plot                    # the recipe's steps, one run at a time
    PYTHONPATH=. python benchmarks/multitask.py --steps 1200 --jobs 4 --plot   # shorter, all runs at once
    PYTHONPATH=. python benchmarks/multitask.py --reuse --plot            # tables and figures of finished runs
    PYTHONPATH=. python benchmarks/multitask.py --table-from benchmarks/results/multitask.json --plot

What runs (each in its own process, ``nice -n 10``, ``train.threads`` and ``OMP_NUM_THREADS`` = ``--threads``):

* ``multitask``: the recipe (default ``recipes/multitask/image_audio_points_tiny.yaml``, ``train.mixing:
  weighted``) for ``N = train.max_steps`` steps. Step ``i`` trains task ``draw_task(weights, seed, i)``, so the
  number of steps each task gets, ``n_k = #{i < N : draw(i) = k}`` (about ``N w_k / sum w``), is known
  before training; it is checked afterwards against the checkpoint's ``data_position``.
* ``<task> alone``: the same recipe file with only task ``k`` kept, ``train.max_steps = n_k``, and the
  same trunk - ``model.context_dim`` pinned to the composed run's (the first conditioned task's width), so a
  task whose conditioner is narrower keeps its context projection. Same seed, LR, warm-up, schedule shape,
  EMA, batch sizes, sampling and evaluation settings.

Every run is then scored by ``lumina_core.training.api.evaluate`` (the recipe's checkers, EMA weights).
A run's spec may also name ``curve`` steps (``benchmarks/multitask_transfer.py`` does): after each of them the
worker writes a checkpoint to ``<run>/curve/`` and, after training, scores it the same way into
``<run>/curve.json`` (outside the timed training loop and evaluation).

Time: a probe subclass of the Lightning module records, after every optimiser step, the wall and process CPU
time since the previous step ended (data loading, forward, backward, clip, AdamW, EMA, checkpoint writes)
and attributes it to the task(s) of that step's batch; set-up (text encoder, feature cache, data) and the
final previews are outside. The composition cost of task ``k`` is ``t_k(composed) / t_k(alone)``, time per
step of task ``k``; the whole cost is ``T(composed) / sum_k T_k(alone)`` over the training loops (the
same task-steps either way). With ``--threads 1`` CPU seconds per step are close to what one free core
would take, which is the figure to trust on a shared machine; wall seconds are printed beside them.

Results: ``--json`` (default ``benchmarks/results/multitask.json``); ``--plot`` draws per-task bars of the
headline scores (multi-task, alone, chance) and of the time per task-step through ``benchmarks/plotting.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = "recipes/multitask/image_audio_points_tiny.yaml"
DEFAULT_JSON = "benchmarks/results/multitask.json"
MULTI = "multitask"  # the composed run's name in the results

#: the score each task is judged by: (metric, where chance comes from, what chance is called);
#: chance is a number, or the name of a metric the checker reports itself (tones: shuffled captions)
HEADLINE: dict[str, tuple[str, float | str, str]] = {
    "shapes": ("adherence", "chance_adherence", "1/60"),
    "tones": ("adherence", "adherence_shuffled", "shuffled captions"),
    "points": ("nn_class_acc", 1 / 8, "1/8"),
    # recipes/multitask/digits_draw_read_tiny.yaml (benchmarks/multitask_transfer.py)
    "draw": ("digit_acc", "chance_digit", "1/10"),
    "read": ("accuracy", 1 / 10, "1/10"),
    # recipes/multitask/digits_few_labels_tiny.yaml: unconditional drawing, judged without labels
    # ("reference_precision": what real held-out digits score, not chance; noise and blank images score 0)
    "draw_any": ("digit_precision", "reference_precision", "real digits"),
    # recipes/multitask/shapes_two_sizes_tiny.yaml: the same shapes drawn at 16 px next to 32 px
    "thumbnails": ("adherence", "chance_adherence", "1/60"),
    # recipes/multitask/shapes_twin_tiny.yaml: the shapes task composed with a copy of itself
    "twin": ("adherence", "chance_adherence", "1/60"),
    # recipes/multitask/shapes_split_colours_tiny.yaml: the shapes in warm and in cool colours (1/30 each)
    "warm": ("adherence", "chance_adherence", "1/30"),
    "cool": ("adherence", "chance_adherence", "1/30"),
}


# -- planning ----------------------------------------------------------------------------------------------------
def load(recipe: str | Path, overrides: Sequence[str] = ()) -> Any:
    """The recipe with ``overrides`` (``key=value``), validated."""
    from lumina_core.config.loader import load_recipe

    return load_recipe(str(recipe), list(overrides))


def task_step_counts(cfg: Any, steps: int) -> dict[str, int]:
    """Steps each task gets in ``steps`` steps of the composed run: exact under ``weighted`` mixing (the draw of
    step ``i`` is a function of ``(run.seed, i)``), every step for every task under ``all``."""
    from lumina_core.training.composition import planned_draw_weights
    from lumina_core.training.data import draw_task

    names = [str(t.name) for t in cfg.tasks]
    if str(cfg.train.mixing) != "weighted":
        return {n: int(steps) for n in names}
    planned = planned_draw_weights(cfg)  # the recipe's draw_weight, through train.composition (temperature)
    weights = [float(planned[n]) for n in names]
    counts = dict.fromkeys(names, 0)
    for i in range(int(steps)):
        counts[names[draw_task(weights, int(cfg.run.seed), i)]] += 1
    return counts


def single_task_recipe(
    cfg: Any, task: str, steps: int, context_dim: int | None, output_dir: str | Path
) -> Any:
    """A copy of the composed recipe ``cfg`` that keeps task ``task`` alone, trained for ``steps`` steps without
    a composition method, with the trunk's caption width pinned to ``context_dim`` (the composed run's) and its
    own run folder."""
    from omegaconf import OmegaConf

    names = [str(t.name) for t in cfg.tasks]
    if task not in names:
        raise ValueError(f"the recipe has no task {task!r}; its tasks: {names}")
    one = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    one.tasks = [one.tasks[names.index(task)]]
    one.train.max_steps = int(steps)
    one.train.composition = []  # one task alone: nothing to compose (the plain recipe)
    one.model.context_dim = context_dim
    one.run.name = f"{cfg.run.name}_{task}_alone"
    one.run.output_dir = str(output_dir)
    return one


def trunk_context_dim(cfg: Any) -> int | None:
    """The caption width the composed run's trunk gets: ``model.context_dim``, or the first conditioned task's
    conditioner width (what ``lumina_core.training.build`` takes when it is null)."""
    if cfg.model.get("context_dim") is not None:
        return int(cfg.model.context_dim)
    from lumina_core.config.typed import typed_recipe
    from lumina_core.training.task import build_conditioner

    for task in typed_recipe(cfg).tasks:
        dim = getattr(build_conditioner(task), "dim", None)
        if dim is not None:
            return int(dim)
    return None


# -- one run, in its own process -----------------------------------------------------------------------------------
def _timed_module_class(
    built: dict[str, Any], curve: Sequence[int] = (), curve_dir: Path | None = None
) -> type:
    """The Lightning module with a step timer: after each optimiser step, the wall and process CPU seconds
    since the previous one ended, added to the task(s) of that step's batch (nothing else changes). The
    module ``train`` builds is kept in ``built["module"]``, to read the timer afterwards. ``curve``: after
    these steps a checkpoint is also written to ``curve_dir`` (all kept), to score the run as it trains; the
    timer does not count the writing."""
    from lumina_core.training.callbacks import CheckpointEvery
    from lumina_core.training.module import LuminaLightningModule

    curve_steps = {int(s) for s in curve}
    saver = CheckpointEvery(curve_dir, 1, keep=None) if curve_steps and curve_dir is not None else None

    class TimedModule(LuminaLightningModule):
        step_times: dict[str, dict[str, float]]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.step_times = {}
            built["module"] = self

        def on_train_start(self) -> None:
            super().on_train_start()
            self.step_times = {}
            self._clock = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            super().on_train_batch_end(outputs, batch, batch_idx)
            wall, cpu = time.perf_counter(), time.process_time()
            dw, dc = wall - self._clock[0], cpu - self._clock[1]
            for name in batch:  # weighted mixing: one task; "all": every task shares the step
                t = self.step_times.setdefault(name, {"steps": 0, "wall_s": 0.0, "cpu_s": 0.0})
                t["steps"] += 1
                t["wall_s"] += dw / len(batch)
                t["cpu_s"] += dc / len(batch)
            if saver is not None and self.step in curve_steps:
                saver.save(self)
            self._clock = (time.perf_counter(), time.process_time())

    return TimedModule


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one run described by ``spec`` (written by :func:`launch`); write and return its
    ``timing.json``: per-task training time, set-up and evaluation time, data positions."""
    from omegaconf import OmegaConf

    import lumina_core.training.module as module_mod
    from lumina_core.training import api
    from lumina_core.training import checkpoint as ckpt_io

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = OmegaConf.create(spec["recipe"])
    captured: dict[str, Any] = {}
    original = module_mod.LuminaLightningModule
    curve = [int(s) for s in spec.get("curve", []) if 0 < int(s) < int(cfg.train.max_steps)]
    curve_dir = Path(cfg.run.output_dir) / "curve"
    module_mod.LuminaLightningModule = _timed_module_class(captured, curve, curve_dir)
    try:
        run_dir = api.train(cfg, resume="last" if spec.get("resume") else None)
    finally:
        module_mod.LuminaLightningModule = original
    t1, c1 = time.perf_counter(), time.process_time()
    points = {}
    if curve:  # the checker at every curve step before the last (EMA weights, as at the end)
        for ck in sorted(p for p in curve_dir.iterdir() if p.is_dir() and p.name.startswith("step_")):
            step = int(json.loads((ck / ckpt_io.META_FILE).read_text())["step"])
            points[str(step)] = api.evaluate(cfg, ck)
    te, ce = time.perf_counter(), time.process_time()
    metrics = api.evaluate(cfg)
    t2, c2 = time.perf_counter(), time.process_time()
    if curve:
        points[str(int(cfg.train.max_steps))] = metrics
        (Path(run_dir) / "curve.json").write_text(json.dumps(points, indent=2) + "\n")
    meta = json.loads((ckpt_io.resolve_weights("last", run_dir) / ckpt_io.META_FILE).read_text())
    per_task = captured["module"].step_times
    loop_wall = sum(t["wall_s"] for t in per_task.values())
    loop_cpu = sum(t["cpu_s"] for t in per_task.values())
    timing = {
        "tasks": per_task,
        "resumed": bool(spec.get("resume")),  # the times cover the part after the checkpoint it continued from
        "train_loop": {"wall_s": loop_wall, "cpu_s": loop_cpu},
        "train_process": {"wall_s": t1 - t0, "cpu_s": c1 - c0},  # set-up and final previews included
        "eval": {"wall_s": t2 - te, "cpu_s": c2 - ce},  # the last checkpoint's (the curve's are outside)
        "data_position": meta.get("data_position"),
        "step": meta.get("step"),
        "threads": int(cfg.train.threads or 0),
    }
    (Path(run_dir) / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    (Path(run_dir) / "bench_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return timing


# -- orchestration -------------------------------------------------------------------------------------------------
def plan(args: argparse.Namespace) -> tuple[Any, dict[str, int], dict[str, Any]]:
    """The composed recipe, each task's step count and ``{run name: recipe}`` for every run."""
    overrides = [f"train.threads={args.threads}", f"run.output_dir={Path(args.out) / MULTI}", *args.override]
    if args.steps:
        overrides.append(f"train.max_steps={args.steps}")
    cfg = load(args.recipe, overrides)
    if args.eval_samples:
        for t in cfg.tasks:
            t.eval.num_samples = int(args.eval_samples)
    counts = task_step_counts(cfg, int(cfg.train.max_steps))
    dim = trunk_context_dim(cfg)
    runs = {MULTI: cfg}
    for name, n in counts.items():
        runs[name] = single_task_recipe(cfg, name, n, dim, Path(args.out) / f"{name}_alone")
    return cfg, counts, runs


def launch(runs: Mapping[str, Any], args: argparse.Namespace) -> None:
    """Run each recipe's worker process, ``args.jobs`` at a time; stop with the log's end if one fails."""
    from omegaconf import OmegaConf

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    pending = list(runs.items())
    active: list[tuple[str, subprocess.Popen, Path]] = []
    while pending or active:
        while pending and len(active) < max(1, args.jobs):
            name, cfg = pending.pop(0)
            run_dir = Path(cfg.run.output_dir)
            if getattr(args, "skip_done", False) and _finished(run_dir, int(cfg.train.max_steps)):
                print(f"already done: {name} ({run_dir})", flush=True)
                continue
            steps = int(cfg.train.max_steps)
            resume = bool(getattr(args, "resume_unfinished", False)) and _checkpoint_step(run_dir) < steps
            if run_dir.exists() and not resume:  # the benchmark's own folder: a rerun starts clean
                shutil.rmtree(run_dir)
            spec = out / f"{name}.spec.json"
            by_run = getattr(args, "curve_by_run", None) or {}
            curve = list(by_run.get(name, getattr(args, "curve", None) or []))
            spec.write_text(
                json.dumps({"recipe": OmegaConf.to_container(cfg, resolve=False), "curve": curve, "resume": resume})
            )
            log = out / f"{name}.log"
            cmd = [
                "nice",
                "-n",
                str(args.nice),
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                str(spec),
            ]
            how = "resuming its last checkpoint" if resume else "starting"
            print(f"{how} {name}: {cfg.train.max_steps} steps -> {run_dir} (log {log})", flush=True)
            with open(log, "a" if resume else "w") as fh:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
            active.append((name, proc, log))
        time.sleep(2.0)
        for entry in list(active):
            name, proc, log = entry
            if proc.poll() is None:
                continue
            active.remove(entry)
            if proc.returncode != 0:
                for _, other, _ in active:
                    other.terminate()
                tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
                raise SystemExit(f"run {name} failed (exit {proc.returncode}); end of {log}:\n{tail}")
            print(f"finished {name}", flush=True)


def collect(runs: Mapping[str, Any]) -> dict[str, Any]:
    """``{run: {"metrics", "timing"}}`` from the run folders (after :func:`launch`, or earlier runs: --reuse)."""
    out = {}
    for name, cfg in runs.items():
        run_dir = Path(cfg.run.output_dir)
        files = [run_dir / "timing.json", run_dir / "bench_metrics.json"]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"--reuse needs finished runs, but these files are missing: {', '.join(missing)}; run the benchmark "
                "without --reuse first (with the same --steps, --out and --recipe)"
            )
        out[name] = {"timing": json.loads(files[0].read_text()), "metrics": json.loads(files[1].read_text())}
    return out


def check_positions(results: Mapping[str, Any], counts: Mapping[str, int]) -> None:
    """The composed run's checkpoint must say each task consumed ``n_k`` batches (the planned draws)."""
    pos = results[MULTI]["timing"].get("data_position") or {}
    for name, n in counts.items():
        if pos.get(name) is not None and int(pos[name]) != int(n):
            raise ValueError(
                f"task {name!r}: planned {n} steps from the draw sequence, but the composed run's checkpoint "
                f"says it consumed {pos[name]} batches; the alone runs would not match (was the run resumed "
                "with other weights?)"
            )


# -- mechanisms: one composed run per composition method, each against the tasks alone (issue #25) -----------------
#: ``--mechanisms`` entries: ``NAME[+NAME...][@MIXING]``; ``plain`` is the empty composition. The recipe's
#: own mixing is ``weighted``; ``@all`` runs every task every step (PCGrad needs it) for ``--all-steps`` steps
DEFAULT_MECHANISMS = ("plain", "loss_norm", "task_embedding", "temperature", "plain@all", "pcgrad@all")
#: parameters of a method in the table's runs (the rest take their defaults)
MECHANISM_PARAMS: dict[str, dict[str, Any]] = {"temperature": {"T": 2.0}}
#: the distribution metric of each task (lower is better): FID-style, FAD-style, 1-NNA (Chamfer, ideal 0.5)
DISTRIBUTION: dict[str, str] = {
    "shapes": "fid", "tones": "fad", "points": "cd_1nna",
    "thumbnails": "fid", "twin": "fid", "warm": "fid", "cool": "fid",  # the shapes pairings
}  # fmt: skip


def add_judging_args(p: argparse.ArgumentParser) -> None:
    """``--headline`` and ``--distribution``: how the tasks of a recipe this script does not know are judged."""
    p.add_argument(
        "--headline", nargs="*", action="extend", default=[], metavar="TASK=METRIC[:CHANCE]",
        help="the score a task is judged by (higher is better): needed for a task this script does not know by "
        "name, and replaces the known choice for one it does; CHANCE: a number (0.125 or 1/8) or the name of a "
        "metric the checker reports (e.g. points=nn_class_acc:1/8, draw=digit_acc:chance_digit)",
    )  # fmt: skip
    p.add_argument(
        "--distribution", nargs="*", action="extend", default=[], metavar="TASK=METRIC",
        help="the task's distribution metric (lower is better: fid, fad, cd_1nna); a task without one gets '-'",
    )  # fmt: skip


def apply_judging(headline: Sequence[str], distribution: Sequence[str]) -> None:
    """Add ``--headline`` / ``--distribution`` entries to :data:`HEADLINE` and :data:`DISTRIBUTION`."""
    for entry in headline:
        task, sep, spec = entry.partition("=")
        metric, _, chance = spec.partition(":")
        if not (sep and task and metric):
            raise ValueError(f"--headline takes TASK=METRIC[:CHANCE]; got {entry!r}")
        level: float | str = chance or "chance"  # a metric the checker reports, by default its "chance"
        try:
            level = float(Fraction(chance))  # 0.125 or 1/8
        except (ValueError, ZeroDivisionError):
            pass
        HEADLINE[task] = (metric, level, chance or "the checker's 'chance'")
    for entry in distribution:
        task, sep, metric = entry.partition("=")
        if not (sep and task and metric):
            raise ValueError(f"--distribution takes TASK=METRIC; got {entry!r}")
        DISTRIBUTION[task] = metric


def unjudged(tasks: Sequence[str]) -> str | None:
    """The message for tasks that have no headline score (checked before anything trains), or None."""
    missing = [t for t in tasks if t not in HEADLINE]
    if not missing:
        return None
    return (
        f"no headline score for task(s) {', '.join(missing)}: this script judges each task by one score of its "
        f"checker, known for {', '.join(sorted(HEADLINE))}; say which with --headline "
        + " ".join(f"{t}=METRIC[:CHANCE]" for t in missing)
        + " (and --distribution TASK=METRIC for a distribution column)"
    )


def parse_mechanism(entry: str) -> tuple[str, list[dict[str, Any]]]:
    """``"loss_norm+task_embedding@all"`` -> ``("all", [{name: loss_norm}, {name: task_embedding}])``."""
    methods, _, mixing = entry.partition("@")
    mixing = mixing or "weighted"
    names = [m for m in methods.split("+") if m and m != "plain"]
    return mixing, [{"name": m, "params": dict(MECHANISM_PARAMS.get(m, {}))} for m in names]


def _label(entry: str) -> str:
    return entry.replace("+", "_").replace("@", "_at_")


def plan_mechanisms(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``({run name: recipe}, {mechanism: {"composed", "alone": {task: run}, "counts", "mixing"}})``: one
    composed run per mechanism and, per task, one alone run per distinct step count (shared between the
    mechanisms that give the task the same number of steps)."""

    out = Path(args.out)
    base = [f"train.threads={args.threads}", *args.override]
    runs: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    dim = None
    for entry in args.mechanisms:
        mixing, methods = parse_mechanism(entry)
        steps = int(args.steps) if mixing == "weighted" else int(args.all_steps)
        name = f"composed_{_label(entry)}"
        cfg = load(
            args.recipe,
            [
                *base, f"train.max_steps={steps}", f"train.mixing={mixing}", f"run.output_dir={out / name}",
                f"train.composition={json.dumps(methods)}",
            ],
        )  # fmt: skip
        if args.eval_samples:
            for t in cfg.tasks:
                t.eval.num_samples = int(args.eval_samples)
        dim = trunk_context_dim(cfg) if dim is None else dim
        counts = task_step_counts(cfg, steps)
        runs[name] = cfg
        alone = {}
        for task, n in counts.items():
            run = f"alone_{task}_{n}"
            if run not in runs:  # the plain recipe with that task alone: no composition method
                one = single_task_recipe(cfg, task, n, dim, out / run)
                one.train.mixing = "weighted"
                runs[run] = one
            alone[task] = run
        groups[entry] = {"composed": name, "alone": alone, "counts": counts, "mixing": mixing, "steps": steps}
        if getattr(args, "curve_at", None):  # the composed run at these steps; each task alone at its step count there
            at = sorted({int(s) for s in args.curve_at if 0 < int(s) < steps})
            curves = args.curve_by_run = getattr(args, "curve_by_run", None) or {}
            curves[name] = at
            for s in at:
                for task, n in task_step_counts(cfg, s).items():
                    curves.setdefault(alone[task], [])
                    if n not in curves[alone[task]]:
                        curves[alone[task]].append(n)
    return runs, groups


def _checkpoint_step(run_dir: Path) -> int:
    """The step of the run folder's last checkpoint, to continue from (``--resume-unfinished``); a large number
    when it has none (nothing to continue: the run starts again)."""
    from lumina_core.training import checkpoint as ckpt_io

    try:
        meta = ckpt_io.resolve_checkpoint(run_dir / "checkpoints" / "last", fallback=False) / ckpt_io.META_FILE
        return int(json.loads(meta.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return sys.maxsize


def _finished(run_dir: Path, steps: int) -> bool:
    """A benchmark run already trained to ``steps`` and scored (``--skip-done``)."""
    timing, metrics = run_dir / "timing.json", run_dir / "bench_metrics.json"
    if not (timing.is_file() and metrics.is_file()):
        return False
    return int(json.loads(timing.read_text()).get("step") or -1) == int(steps)


def _metric(results: Mapping[str, Any], run: str, task: str, key: str) -> float | None:
    value = results[run]["metrics"].get(f"{task}/{key}")
    return None if value is None else float(value)


def mechanism_rows(results: Mapping[str, Any], groups: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per mechanism: each task's headline and distribution metric composed and alone, and the ratios; the
    mean and the worst headline ratio (composed / alone; for the distribution metrics alone / composed, so
    above 1 is better there too)."""
    rows = []
    for entry, g in groups.items():
        row: dict[str, Any] = {
            "mechanism": entry,
            "mixing": g["mixing"],
            "steps": g["steps"],
            "counts": g["counts"],
        }
        ratios = []
        for task, alone_run in g["alone"].items():
            head = HEADLINE[task][0]
            c, a = _metric(results, g["composed"], task, head), _metric(results, alone_run, task, head)
            dist = DISTRIBUTION.get(task)
            d_c = None if dist is None else _metric(results, g["composed"], task, dist)
            d_a = None if dist is None else _metric(results, alone_run, task, dist)
            row[task] = {"head": c, "head_alone": a, "dist": d_c, "dist_alone": d_a}
            if c is not None and a:
                ratios.append(c / a)
        row["mean_ratio"] = sum(ratios) / len(ratios) if ratios else float("nan")
        row["min_ratio"] = min(ratios) if ratios else float("nan")
        rows.append(row)
    return sorted(rows, key=lambda r: -r["mean_ratio"])


def mechanism_table(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> str:
    """Markdown, best mean headline ratio first: per task ``composed / alone (ratio)`` of the headline score and
    of the distribution metric."""
    head = (
        "| mechanism | mixing, steps (per task) | "
        + " | ".join(f"{t} {HEADLINE[t][0]} | {t} {DISTRIBUTION.get(t, '-')}" for t in tasks)
        + " | mean / worst headline ratio |"
    )
    lines = [head, "|" + "---|" * (3 + 2 * len(tasks))]
    for r in rows:
        cells = []
        for t in tasks:
            m = r[t]
            hr = _ratio(m["head"], m["head_alone"])
            dr = _ratio(
                m["dist_alone"], m["dist"]
            )  # lower is better: alone / composed, above 1 = composed better
            cells.append(f"{_fmt(m['head'])} / {_fmt(m['head_alone'])} ({hr})")
            cells.append(f"{_fmt(m['dist'])} / {_fmt(m['dist_alone'])} ({dr})")
        per_task = ", ".join(f"{t} {n}" for t, n in r["counts"].items())
        lines.append(
            f"| {r['mechanism']} | {r['mixing']}, {r['steps']} ({per_task}) | "
            + " | ".join(cells)
            + f" | **{r['mean_ratio']:.2f}x** / {r['min_ratio']:.2f}x |"
        )
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")


def diagnostics_summary(runs: Mapping[str, Any], names: Sequence[str]) -> str:
    """Markdown of the composed runs' diagnostics (``train.diagnostics_every``), averaged over their probes:
    per task trunk gradient norm, trunk update per step, LR mean; cosines between the tasks' gradients."""
    from lumina_core.training.diagnostics import read_diagnostics

    lines = []
    for name in names:
        rows = read_diagnostics(Path(runs[name].run.output_dir))
        if not rows:
            continue
        keys = sorted({k for r in rows for k in r if k != "step" and not k.startswith(("steps_", "lr_sum_"))})
        means = {k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in keys}
        lines.append(
            f"{name} ({len(rows)} probes, steps {rows[0]['step']}-{rows[-1]['step']}): "
            + ", ".join(f"{k}={v:.3g}" for k, v in means.items())
        )
    return "\n".join(lines)


def main_mechanisms(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    """``--mechanisms``: train (or, with ``--reuse``, read) every run, then print and save the ranking table."""
    names = [t.name for t in load(args.recipe, args.override).tasks]
    problem = unjudged(names)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if args.all_steps is None:
        args.all_steps = max(1, int(args.steps) // len(names))
    runs, groups = plan_mechanisms(args)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    before = machine()
    if args.only:
        unknown = sorted(set(args.only) - set(runs))
        if unknown:
            raise ValueError(f"--only: no run(s) {unknown} in the plan; its runs: {', '.join(runs)}")
        launch({k: v for k, v in runs.items() if k in args.only}, args)
        return {}
    if not args.reuse:
        launch(runs, args)
    results = collect(runs)
    for g in groups.values():
        check_positions({MULTI: results[g["composed"]]}, g["counts"])
    tasks = list(next(iter(groups.values()))["counts"])
    rows = mechanism_rows(results, groups)
    command = "PYTHONPATH=. python benchmarks/multitask.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    saved = {
        "recipe": args.recipe,
        "mechanisms": {k: {**v, "methods": parse_mechanism(k)[1]} for k, v in groups.items()},
        "mechanism_params": MECHANISM_PARAMS,
        "rows": rows,
        "command": command.strip(),
        "started": started,
        "threads": args.threads,
        "jobs": args.jobs,
        "machine": {"before": before, "after": machine()},
        "runs": results,
        "curves": {  # {run: {step: metrics}} of the runs scored as they trained (--curve-at)
            name: json.loads(f.read_text())
            for name, cfg in runs.items()
            if (f := Path(cfg.run.output_dir) / "curve.json").is_file()
        },
    }
    print(mechanism_table(rows, tasks))
    summary = diagnostics_summary(runs, [g["composed"] for g in groups.values()])
    if summary:
        print("\ndiagnostics (means over the probes):\n" + summary)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")
        print("results:", args.json)
    return saved


# -- tables and figures ----------------------------------------------------------------------------------------------
def _chance(name: str, metrics: Mapping[str, float]) -> float | None:
    spec = HEADLINE.get(name)
    if spec is None:
        return None
    source = spec[1]
    if isinstance(source, str):
        value = metrics.get(f"{name}/{source}")
        return None if value is None else float(value)
    return float(source)


def _scalar_metrics(metrics: Mapping[str, float], task: str) -> dict[str, float]:
    """The task's metrics without per-class breakdowns (``<task>/<metric>`` keys with one slash)."""
    prefix = f"{task}/"
    return {
        k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix) and k.count("/") == 1
    }


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def quality_table(results: Mapping[str, Any], tasks: Sequence[str], all_metrics: bool = False) -> str:
    """Markdown, one row per task and metric: multi-task, alone, multi/alone, chance (headline metrics first;
    ``all_metrics``: every scalar the checkers report)."""
    lines = ["| task | metric | multi-task | alone | multi / alone | chance |", "|---|---|---|---|---|---|"]
    multi = results[MULTI]["metrics"]
    for task in tasks:
        alone = results[task]["metrics"]
        m, a = _scalar_metrics(multi, task), _scalar_metrics(alone, task)
        head = HEADLINE.get(task, (None, None, ""))[0]
        keys = [head] if head in m else []
        if all_metrics or not keys:
            keys += sorted(k for k in m if k != head and k in a)
        for key in keys:
            chance = ""
            if key == head:
                c_multi, c_alone = _chance(task, multi), _chance(task, alone)
                if c_multi is not None:
                    chance = (
                        f"{c_multi:.3f}" if c_alone in (None, c_multi) else f"{c_multi:.3f} / {c_alone:.3f}"
                    )
            bold = "**" if key == head else ""
            lines.append(
                f"| {task} | {bold}{key}{bold} | {m[key]:.3f} | {a.get(key, float('nan')):.3f} | "
                f"{_ratio(m[key], a.get(key))} | {chance} |"
            )
    return "\n".join(lines)


def time_table(results: Mapping[str, Any], tasks: Sequence[str]) -> str:
    """Markdown: per task, steps and ms per step of that task alone and composed (CPU and wall), their
    ratio; a last row for the whole training loop (composed vs the alone runs together) and set-up."""
    lines = [
        "| task | steps | CPU ms/step alone | CPU ms/step composed | composed / alone (CPU) | wall ms/step alone | "
        "wall ms/step composed | composed / alone (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    composed = results[MULTI]["timing"]
    for task in tasks:
        a = results[task]["timing"]["tasks"].get(task)
        c = composed["tasks"].get(task)
        if not a or not c:
            continue
        per = {k: (1000 * a[f"{k}_s"] / a["steps"], 1000 * c[f"{k}_s"] / c["steps"]) for k in ("cpu", "wall")}
        lines.append(
            f"| {task} | {c['steps']} | {per['cpu'][0]:.0f} | {per['cpu'][1]:.0f} | {_ratio(per['cpu'][1], per['cpu'][0])} "
            f"| {per['wall'][0]:.0f} | {per['wall'][1]:.0f} | {_ratio(per['wall'][1], per['wall'][0])} |"
        )
    alone_loop = {
        k: sum(results[t]["timing"]["train_loop"][f"{k}_s"] for t in tasks) for k in ("cpu", "wall")
    }
    alone_proc = {
        k: sum(results[t]["timing"]["train_process"][f"{k}_s"] for t in tasks) for k in ("cpu", "wall")
    }
    loop, proc = composed["train_loop"], composed["train_process"]
    lines.append(
        f"| training loop, all tasks | {sum(composed['tasks'][t]['steps'] for t in tasks)} | "
        f"{alone_loop['cpu']:.0f} s (sum) | {loop['cpu_s']:.0f} s | {_ratio(loop['cpu_s'], alone_loop['cpu'])} | "
        f"{alone_loop['wall']:.0f} s (sum) | {loop['wall_s']:.0f} s | {_ratio(loop['wall_s'], alone_loop['wall'])} |"
    )
    lines.append(
        f"| whole `train` call (set-up, previews) | | {alone_proc['cpu']:.0f} s (sum) | {proc['cpu_s']:.0f} s | "
        f"{_ratio(proc['cpu_s'], alone_proc['cpu'])} | {alone_proc['wall']:.0f} s (sum) | {proc['wall_s']:.0f} s | "
        f"{_ratio(proc['wall_s'], alone_proc['wall'])} |"
    )
    return "\n".join(lines)


def recipe_estimate(
    results: Mapping[str, Any], tasks: Sequence[str], steps: int, counts: Mapping[str, int]
) -> str:
    """What the composed recipe's ``steps`` would take at the measured composed CPU time per task-step (one
    thread, i.e. about the wall time on a free core), training loop only."""
    c = results[MULTI]["timing"]["tasks"]
    total = sum(c[t]["cpu_s"] / c[t]["steps"] * counts[t] for t in tasks if t in c and c[t]["steps"])
    return (
        f"{steps} steps at the measured composed CPU time per task-step: {total:.0f} s ({total / 60:.1f} min)"
    )


def headline_bars(results: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{"multi-task" | "alone" | "chance": {"<task> <metric>": value}}`` for :func:`plotting.bar_plot`."""
    bars: dict[str, dict[str, float]] = {"multi-task": {}, "alone": {}, "chance": {}}
    for task in tasks:
        head = HEADLINE.get(task)
        if head is None:
            continue
        label = f"{task} {head[0]}"
        key = f"{task}/{head[0]}"
        if key not in results[MULTI]["metrics"] or key not in results[task]["metrics"]:
            continue
        bars["multi-task"][label] = float(results[MULTI]["metrics"][key])
        bars["alone"][label] = float(results[task]["metrics"][key])
        chance = _chance(task, results[MULTI]["metrics"])
        if chance is not None:
            bars["chance"][label] = chance
    return bars


def time_bars(results: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{"alone" | "composed": {task: CPU ms per step of that task}}``."""
    bars: dict[str, dict[str, float]] = {"alone": {}, "composed": {}}
    for task in tasks:
        a, c = results[task]["timing"]["tasks"].get(task), results[MULTI]["timing"]["tasks"].get(task)
        if a and c:
            bars["alone"][task] = 1000 * a["cpu_s"] / a["steps"]
            bars["composed"][task] = 1000 * c["cpu_s"] / c["steps"]
    return bars


def figures(
    results: Mapping[str, Any], tasks: Sequence[str], note: str = "", out_dir: str | Path | None = None
) -> list[Path]:
    """Two grouped bar plots through ``benchmarks/plotting.py``: ``multitask_scores`` (headline score per
    task: multi-task, alone, chance) and ``multitask_step_time`` (CPU ms per step of each task)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from plotting import bar_plot

    paths = list(
        bar_plot(
            headline_bars(results, tasks), "multitask_scores", title="one trunk for three tasks vs each task alone",
            ylabel="checker score (higher is better)", note=note, out_dir=out_dir,
        )
    )  # fmt: skip
    paths += bar_plot(
        time_bars(results, tasks), "multitask_step_time", title="training time per step of each task",
        ylabel="CPU ms per step (1 thread)", annotate="{:.0f}", note=note, out_dir=out_dir,
    )  # fmt: skip
    return paths


def report(saved: Mapping[str, Any]) -> str:
    tasks = list(saved["task_steps"])
    parts = [
        f"recipe {saved['recipe']}: {saved['steps']} steps, draw weights {saved['draw_weights']}, "
        f"steps per task {saved['task_steps']}",
        "",
        quality_table(saved["runs"], tasks),
        "",
        quality_table(saved["runs"], tasks, all_metrics=True),
        "",
        time_table(saved["runs"], tasks),
        "",
        "recipe estimate: "
        + recipe_estimate(saved["runs"], tasks, saved["recipe_steps"], saved["recipe_task_steps"]),
    ]
    return "\n".join(parts)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere): which kernels
    multiply differs between CPUs (``"auto"``: BLAS on Intel, oneDNN elsewhere), so scores of one run differ
    across machines at the size of a change of seed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
        "loadavg": load,
    }  # fmt: skip


def _load(m: Mapping[str, Any]) -> str:
    return "/".join(f"{x:.1f}" for x in m["loadavg"]) if m.get("loadavg") else "unknown"


def note_of(saved: Mapping[str, Any]) -> str:
    """The figures' footnote: command, CPUs, load average when the runs started, date."""
    before = saved.get("machine", {}).get("before", {})
    return f"{saved.get('command', '')}; {before.get('cpus')} CPUs, load average {_load(before)}; {saved.get('started')}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument(
        "--steps", type=int, default=None, help="steps of the composed run (default: the recipe's)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 240 steps, 16 samples per task evaluated")
    p.add_argument(
        "--eval-samples", type=int, default=None, help="held-out items per task (default: the recipe's)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (train.threads)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (4: all at once, under the same load)")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--out", default="runs/bench_multitask", help="folder of the benchmark's runs")
    p.add_argument("--override", nargs="*", default=[], help="more key=value overrides of the recipe")
    p.add_argument("--reuse", action="store_true", help="read the finished runs in --out instead of training")
    p.add_argument("--json", default=DEFAULT_JSON, help="write the results here ('' for nowhere)")
    p.add_argument(
        "--table-from", metavar="FILE", help="only print the tables of a --json file written before"
    )
    p.add_argument("--plot", action="store_true", help="also draw the figures (benchmarks/plotting.py)")
    p.add_argument(
        "--mechanisms", nargs="*", default=None, metavar="NAME[@MIXING]",
        help="rank composition methods: one composed run per entry (e.g. plain loss_norm pcgrad@all; no value: "
        f"{' '.join(DEFAULT_MECHANISMS)}), each against every task alone at its steps",
    )  # fmt: skip
    p.add_argument(
        "--all-steps", type=int, default=None,
        help="steps of the @all runs (every task every step; default: --steps / number of tasks, the same task-steps)",
    )  # fmt: skip
    p.add_argument(
        "--curve-at", nargs="*", type=int, default=[], metavar="STEP",
        help="--mechanisms: also score each composed run at these steps, and each task alone at its own step "
        "count there (curve.json in each run folder: the gap as training goes on)",
    )  # fmt: skip
    p.add_argument(
        "--resume-unfinished", action="store_true",
        help="continue a run of --out that stopped before its last step from its last checkpoint (exactly, as "
        "`lumina train --resume last`) instead of training it again; with --skip-done, a long benchmark can be "
        "stopped and taken up again. Its timing.json then covers the resumed part only",
    )  # fmt: skip
    p.add_argument("--skip-done", action="store_true", help="keep runs of --out already trained and scored")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="RUN",
        help="--mechanisms: train only these runs of the plan (to split it across processes); --reuse then tabulates",
    )  # fmt: skip
    add_judging_args(p)
    p.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        apply_judging(args.headline, args.distribution)
    except ValueError as exc:
        p.error(str(exc))
    if args.worker:
        return run_worker(json.loads(Path(args.worker).read_text()))
    if args.mechanisms is not None:
        if not args.mechanisms:
            args.mechanisms = list(DEFAULT_MECHANISMS)
        if args.steps is None:
            args.steps = int(load(args.recipe).train.max_steps)
        if args.json == DEFAULT_JSON:
            args.json = "benchmarks/results/multitask_mechanisms.json"
        if args.out == "runs/bench_multitask":
            args.out = "runs/bench_multitask_mechanisms"
        return main_mechanisms(args, argv)
    if args.table_from:
        saved = json.loads(Path(args.table_from).read_text())
        print(report(saved))
        if args.plot:
            print("figures:", *figures(saved["runs"], list(saved["task_steps"]), note_of(saved)))
        return saved
    if args.quick:
        args.steps = args.steps or 240
        args.eval_samples = args.eval_samples or 16
        if args.out == "runs/bench_multitask":
            args.out = "runs/bench_multitask_quick"
        if args.json == DEFAULT_JSON:
            args.json = "benchmarks/results/multitask_quick.json"
    recipe_cfg = load(args.recipe)
    cfg, counts, runs = plan(args)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    before = machine()
    if not args.reuse:
        launch(runs, args)
    results = collect(runs)
    check_positions(results, counts)
    command = "PYTHONPATH=. python benchmarks/multitask.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    saved = {
        "recipe": args.recipe,
        "steps": int(cfg.train.max_steps),
        "draw_weights": {str(t.name): float(t.draw_weight) for t in cfg.tasks},
        "task_steps": counts,
        "recipe_steps": int(recipe_cfg.train.max_steps),
        "recipe_task_steps": task_step_counts(recipe_cfg, int(recipe_cfg.train.max_steps)),
        "threads": args.threads,
        "jobs": args.jobs,
        "command": command.strip(),
        "started": started,
        "machine": {"before": before, "after": machine()},
        "runs": results,
    }
    print(report(saved))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")
        print("results:", args.json)
    if args.plot:
        print("figures:", *figures(results, list(counts), note_of(saved)))
    return saved


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:  # bad input: one paragraph, exit 2 (as the CLI does)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

"""Inference with a trained run: ``sample`` (files for conditions), ``evaluate`` (every task's scores on
held-out items, ``metrics.json``) and ``write_scored_samples`` (the evaluated samples with each one's verdict).

    paths   = sample(cfg, "last", ["a red circle"], num=4, out_dir="out/")
    metrics = evaluate(cfg, None)             # Task.evaluate on held-out items, metrics.json
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lumina_core.config.typed import typed_recipe
from lumina_core.safe_write import write_atomic
from lumina_core.training.build import resolve_device
from lumina_core.training.weights import load_run

__all__ = ["evaluate", "sample", "write_scored_samples"]


def _coerce_condition(value: Any, condition_kind: str) -> Any:
    """Command-line conditions arrive as strings: class labels become ints."""
    if condition_kind == "class" and isinstance(value, str):
        if not value.strip().lstrip("-").isdigit():
            raise ValueError(f"this task is class-conditioned; expected an integer label, got {value!r}")
        return int(value)
    return value


def sample(
    cfg: Any,
    checkpoint: str | Path | None,
    conditions: list | None,
    num: int,
    out_dir: str | Path,
    task: str | None = None,
    on_file: Callable[[Path], None] | None = None,
    lora: Sequence[tuple[str | Path, float]] = (),
    init: str | Path | None = None,
    strength: float | None = None,
    **overrides: Any,
) -> list[Path]:
    """Generate and write samples with the task's sampling settings (``overrides`` replace them, e.g.
    ``steps=8``). ``conditions`` given: ``num`` samples for each; None: ``num`` samples for the first held-out
    conditions. ``task``: which task (default: the recipe's first). Returns the written files.

    Files are written batch by batch as they are generated (``on_file`` is called for each as it lands),
    named ``<task>_<index>_<caption slug>`` and listed in ``out_dir/manifest.json`` with their condition,
    seed, sampler settings and checkpoint (:mod:`.manifest`); the manifest is rewritten as files land
    (:meth:`~.manifest.Manifest.save_if_due`). SIGTERM stops after the batch being written, with the
    manifest complete (:class:`lumina_core.stop_request.WorkStopped`, exit status 143).

    ``lora``: adapter files with a scale each, merged into the weights first (``W += scale * alpha/r * B A``).
    ``init``: a sample file the plugin reads (``plugin.read_file``): image-to-image (SDEdit) from it, re-running
    the last ``strength`` of the flow (0 returns the input, 1 ignores it)."""
    from lumina_core.data.stream import first_items
    from lumina_core.progress import Progress
    from lumina_core.stop_request import StopOnSigterm, WorkStopped
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.manifest import MANIFEST, Manifest, slug
    from lumina_core.training.task_facts import TaskFacts

    cfg = typed_recipe(cfg)
    tcfg = next((t for t in cfg.tasks if t.name == task), None) if task else cfg.tasks[0]
    if tcfg is None:
        raise ValueError(f"unknown task {task!r}; tasks: {[t.name for t in cfg.tasks]}")
    if not TaskFacts.of(tcfg).generative:
        raise ValueError(
            f"task {tcfg.name!r} is a classification task: it generates nothing; "
            "use `lumina predict RECIPE --input FILES` to classify files, or --task to pick a generative task"
        )
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    run = load_run(cfg, ck)
    if lora:
        from lumina_core.finetune.lora import load_adapters_for_sampling

        load_adapters_for_sampling(run.model, [(str(p), float(scale)) for p, scale in lora])
    chosen = run.task(tcfg.name)
    plugin = chosen.plugin
    start: list[Any] | None = None
    if init is not None:
        if not Path(init).is_file():
            raise FileNotFoundError(f"--init {init}: no such file")
        start = [plugin.read_file(init).float()]
    if conditions is None:
        held_out = first_items(chosen.dataset("val"), int(num))
        if not held_out:
            raise ValueError(f"task {tcfg.name!r}: the val split is empty, so there are no held-out conditions")
        conds = [held_out[i % len(held_out)].get("condition") for i in range(int(num))]
    else:
        conds = [_coerce_condition(c, chosen.condition_kind) for c in conditions for _ in range(int(num))]
    settings = chosen.sampling_settings(**overrides)
    out = Path(out_dir)
    manifest = Manifest(
        out, {"task": tcfg.name, "checkpoint": str(ck), **settings.describe("solver", "steps", "grid", "cfg_scale")}
    )
    paths: list[Path] = []

    def write(start: int, samples: list[Any], seed: int) -> None:
        chunk = conds[start : start + len(samples)]
        for k, (x, c) in enumerate(zip(samples, chunk, strict=True)):
            written = [Path(p) for p in plugin.write_preview([x], [c], out, f"{tcfg.name}_{start + k:05d}_{slug(c)}")]
            manifest.add(written, condition=c, seed=seed, index_in_batch=k, batch_size=len(chunk))
            paths.extend(written)
            for p in written:
                if on_file is not None:
                    on_file(p)
        progress.update(len(samples))
        manifest.save_if_due()  # a run stopped at any point keeps its files mapped to their conditions
        if stop.requested:
            manifest.save()
            raise WorkStopped(
                f"stopped by SIGTERM after {start + len(samples)} of {len(conds)} samples; the {len(paths)} "
                f"file(s) written are listed in {out / MANIFEST}"
            )

    try:
        with StopOnSigterm() as stop, Progress(len(conds), f"sampling {tcfg.name}", "samples") as progress:
            chosen.generate(
                run.model, conds, device=resolve_device(str(cfg.run.device)), on_batch=write,
                init=None if start is None else start * len(conds), strength=strength, settings=settings,
            )  # fmt: skip
    finally:
        if manifest.entries:
            manifest.save()
    return paths


def evaluate(cfg: Any, checkpoint: str | Path | None = None, **overrides: Any) -> dict[str, float]:
    """Evaluate every task on its first ``eval.num_samples`` held-out items (:meth:`~.task.Task.evaluate`, EMA
    weights): a generative task generates for their conditions and shapes with its sampling settings and scores
    with ``plugin.evaluate(samples, items, dataset)``, a recognition task's objective scores the items; return
    ``{"<task>/<metric>": value}`` and write it to ``<run_dir>/metrics.json``.

    Each sample is graded once where the checker allows it (``score_is_mean`` or ``score_with_verdicts``, see
    :mod:`lumina_core.training.verdicts`): the same grading gives the scores and each sample's verdict in
    ``<run_dir>/eval/<task>/manifest.json`` (:func:`write_scored_samples`)."""
    from lumina_core.data.stream import first_items
    from lumina_core.progress import Progress
    from lumina_core.training import checkpoint as ckpt_io

    cfg = typed_recipe(cfg)
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    run = load_run(cfg, ck)
    dev = resolve_device(str(cfg.run.device))
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}  # non-scalar results (a classifier's confusion matrix), metrics.json only
    for name, task in run.tasks.items():
        ev = task.config.eval
        for suffix, val in task.eval_splits():
            items = first_items(val, int(ev.num_samples))
            if not task.generative:  # a classifier scores its items in one go: no samples landing to count
                result = task.evaluate(run.model, items, val, dev, **overrides)
            else:
                with Progress(len(items), f"evaluating {name}{suffix}", "samples") as progress:
                    result = task.evaluate(
                        run.model, items, val, dev,
                        on_batch=lambda start, batch, seed: progress.update(len(batch)), **overrides,
                    )  # fmt: skip
            metrics.update({f"{name}/{k}{suffix}": v for k, v in result.scores.items()})
            if result.details is not None:
                details[f"{name}{suffix}"] = result.details
            if result.samples is not None:
                write_scored_samples(
                    Path(cfg.run.output_dir) / "eval" / f"{name}{suffix}", task.plugin, val, items, result.samples,
                    {"checkpoint": str(ck), **result.settings.describe()}, verdicts=result.verdicts,
                    score_kwargs=result.score_kwargs,
                )  # fmt: skip
    run_dir = Path(cfg.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = steps = None  # a converted checkpoint has no meta.json
    if (ck / ckpt_io.META_FILE).is_file():
        meta = json.loads((ck / ckpt_io.META_FILE).read_text())  # read once: the step and each task's steps
        step, steps = meta.get("step"), ckpt_io.task_steps_in(meta)
    record = {"checkpoint": str(ck), "step": step, "task_steps": steps, "metrics": metrics}
    if details:
        record["details"] = details
    write_atomic(run_dir / "metrics.json", json.dumps(record, indent=2) + "\n", "the evaluation's metrics")
    return metrics


def write_scored_samples(
    out_dir: Path,
    plugin: Any,
    dataset: Any,
    items: list[dict],
    samples: list[Any],
    settings: dict[str, Any],
    verdicts: Sequence[dict[str, float]] | None = None,
    score_kwargs: dict[str, Any] | None = None,
) -> Path:
    """The samples an evaluation scored, as files, with the checker's verdict on each one.

    ``out_dir`` gets one preview per sample (named ``<index>_<condition slug>``) and ``manifest.json``: per
    file, the condition, the ground truth (``meta``) and the scores the checker gives that sample alone
    - so a checker that is too generous, or a model that fails on one kind of prompt, shows up by reading
    it. ``verdicts`` are those scores when the evaluation already has them (one per sample, in order: see
    :class:`lumina_core.training.verdicts.VerdictRecorder`); otherwise each sample is graded here with
    ``dataset.score([sample], [item], **score_kwargs)``. Datasets without a checker get the files and
    conditions only."""
    import shutil

    from lumina_core.training.manifest import Manifest, slug

    if verdicts is not None and len(verdicts) != len(samples):
        raise ValueError(f"write_scored_samples: {len(verdicts)} verdicts for {len(samples)} samples")
    if out_dir.exists():
        shutil.rmtree(out_dir)  # the verdicts of the previous evaluation of this run
    score = getattr(dataset, "score", None)
    manifest = Manifest(out_dir, {k: v for k, v in settings.items() if k != "rope_scaling"})
    for i, (x, item) in enumerate(zip(samples, items, strict=True)):
        cond = item.get("condition")
        files = plugin.write_preview([x], [cond], out_dir, f"{i:05d}_{slug(cond)}")
        if verdicts is not None:
            verdict: dict[str, float] | None = {k: float(v) for k, v in verdicts[i].items()}
        elif callable(score):
            verdict = {k: float(v) for k, v in score([x], [item], **(score_kwargs or {})).items()}
        else:
            verdict = None
        manifest.add(files, condition=cond, meta=item.get("meta", {}), verdict=verdict)
    return manifest.save()

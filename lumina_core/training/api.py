"""The training API: ``train``, ``sample``, ``evaluate`` and ``load_run``.

    from lumina_core.training.api import train, sample, evaluate, load_run
    run_dir = train(cfg)                      # cfg: a recipe (OmegaConf DictConfig following config/schema.py)
    run_dir = train(cfg, resume="last")       # continue exactly where the last checkpoint left off
    paths   = sample(cfg, "last", ["a red circle"], num=4, out_dir="out/")
    metrics = evaluate(cfg, None)             # generate for held-out items, plugin.evaluate, metrics.json

A run directory holds ``config.yaml``, ``checkpoints/`` (see :mod:`.checkpoint`), ``tb/`` (TensorBoard),
``previews/`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from lumina_core.training.build import (
    as_recipe,
    build_dataset,
    build_objective,
    build_parts,
    load_trainable,
    resolve_device,
    sampling_kwargs,
    trainable_modules,
)

#: how many held-out items per task the preview callback renders
PREVIEW_ITEMS = 4


class _DropLightningTips(logging.Filter):
    """Keep Lightning's console output to what matters for a run (no advertising tips)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _trainer_device(device: str) -> dict[str, Any]:
    if device == "auto":
        return {"accelerator": "auto", "devices": 1}
    if device == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        return {"accelerator": "gpu", "devices": [index]}
    raise ValueError(f"run.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")


def train(cfg: Any, resume: str | None = None) -> Path:
    """Train the recipe ``cfg``; return the run directory. ``resume``: a checkpoint (or run) directory, or
    ``"last"`` for the newest checkpoint of this run's directory. Everything is restored: weights, EMA,
    optimiser, LR schedule, step, RNG states and each task's data position."""
    import lightning as L
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from omegaconf import OmegaConf

    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.callbacks import CheckpointEvery, PreviewSamples
    from lumina_core.training.curves import LossCurves
    from lumina_core.training.data import MultiTaskBatches, task_loader
    from lumina_core.training.module import LuminaLightningModule

    cfg = as_recipe(cfg)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    run_dir = Path(cfg.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = run_dir / "checkpoints"
    ckpt_io.clean_temporaries(ckpt_root)

    L.seed_everything(int(cfg.run.seed), verbose=False)
    parts = build_parts(cfg)
    module = LuminaLightningModule(cfg, parts, run_dir)
    if resume is not None:
        ck = ckpt_io.resolve_checkpoint(resume, run_dir)
        ema = ckpt_io.load_weights(ck, "ema") if (ck / ckpt_io.EMA_FILE).is_file() else None
        module.restore(ckpt_io.load_weights(ck, "model"), ema, ckpt_io.load_state(ck))
        module.last_checkpoint = ck
        print(f"resuming from {ck} at step {module.step}")
    OmegaConf.save(cfg, run_dir / "config.yaml")

    remaining = int(tc.max_steps) - module.step
    if remaining <= 0:
        print(f"nothing to do: step {module.step} >= train.max_steps={tc.max_steps}")
        return run_dir

    loaders = {}
    val_items: dict[str, list[dict]] = {}
    for i, task in enumerate(cfg.tasks):
        ds = build_dataset(task, "train")
        loaders[task.name] = task_loader(
            ds, int(task.data.batch_size), int(task.data.num_workers), int(cfg.run.seed) + i,
            module.data_position[task.name],
        )  # fmt: skip
        val = build_dataset(task, "val")
        previews = getattr(parts.objectives[task.name], "generative", True)  # a classifier generates nothing
        val_items[task.name] = [val[j] for j in range(min(PREVIEW_ITEMS, len(val)))] if previews else []

    tips = _DropLightningTips()
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_log.addFilter(tips)
    try:
        trainer = L.Trainer(
            **_trainer_device(str(cfg.run.device)),
            precision=str(tc.precision),
            max_steps=remaining,
            max_epochs=-1,
            logger=TensorBoardLogger(str(run_dir), name="tb", version=""),
            callbacks=[
                CheckpointEvery(ckpt_root, int(tc.ckpt_every)),
                PreviewSamples(run_dir / "previews", int(tc.preview_every), val_items, PREVIEW_ITEMS),
                LossCurves(run_dir),  # curves/loss.png: the loss per task, beside TensorBoard
            ],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            use_distributed_sampler=False,
            default_root_dir=str(run_dir),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
            trainer.fit(module, train_dataloaders=MultiTaskBatches(loaders))
    finally:
        lightning_log.removeFilter(tips)
    if module.nonfinite_skipped:
        print(f"{module.nonfinite_skipped} step(s) with a non-finite loss were skipped")
    return run_dir


def load_run(
    cfg: Any, checkpoint: str | Path | None = None, weights: str = "ema", device: str | None = None
) -> tuple[nn.Module, dict[str, Any], dict[str, nn.Module]]:
    """``(model, {task: plugin}, {task: conditioner})`` of a trained run, in eval mode on ``device``.

    ``checkpoint``: a checkpoint or run directory, None / ``"last"`` for the run's newest checkpoint, or a
    converted checkpoint (``lumina convert`` of released or diffusers weights; its image task is loaded as
    the recipe's, see :func:`lumina_core.interop.formats.converted_state_dict`);
    ``weights``: ``"ema"`` (default, what previews and evaluation use) or ``"model"`` (raw weights).
    """
    from lumina_core.training import checkpoint as ckpt_io

    cfg = as_recipe(cfg)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model'; got {weights!r}")
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    parts = build_parts(cfg)
    mods = trainable_modules(parts.model, parts.conditioners)
    if ckpt_io.is_converted(ck):
        load_trainable(mods, _converted_weights(ck, parts.model, mods))
    else:
        have_ema = (ck / ckpt_io.EMA_FILE).is_file()
        load_trainable(mods, ckpt_io.load_weights(ck, "ema" if weights == "ema" and have_ema else "model"))
    dev = device or resolve_device(str(cfg.run.device))
    parts.model.to(dev).eval()
    for enc in parts.conditioners.values():
        enc.to(dev).eval()
    for p in parts.plugins.values():
        p.to(dev)
    return parts.model, parts.plugins, parts.conditioners


def _converted_weights(path: Path, model: Any, mods: dict[str, Any]) -> dict[str, Any]:
    """A converted checkpoint's weights under the run's key prefixes (``model.*``); it holds the Next-DiT
    only, so the recipe must not have trainable conditioners (class tables) that need weights too."""
    from lumina_core.interop.formats import converted_state_dict

    others = sorted(k for k in mods if k != "model")
    if others:
        raise ValueError(
            f"the converted checkpoint at {path} holds the Next-DiT only, but the recipe also has trainable "
            f"conditioners {others} with no weights there; use a frozen text encoder (e.g. hf)"
        )
    specs = {name: adapter.spec for name, adapter in model.adapters.items()}
    state = converted_state_dict(path, model.config, specs)
    return {f"model.{k}": v for k, v in state.items()}


def _coerce_condition(value: Any, conditioner: Any) -> Any:
    """Command-line conditions arrive as strings: class labels become ints."""
    if getattr(conditioner, "kind", None) == "class" and isinstance(value, str):
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
    **overrides: Any,
) -> list[Path]:
    """Generate and write samples with the task's sampling settings (``overrides`` replace them, e.g.
    ``steps=8``). ``conditions`` given: ``num`` samples for each; None: ``num`` samples for the first held-out
    conditions. ``task``: which task (default: the recipe's first). Returns the written files."""
    from lumina_core.sampling import generate

    cfg = as_recipe(cfg)
    model, plugins, conditioners = load_run(cfg, checkpoint)
    tcfg = next((t for t in cfg.tasks if t.name == task), None) if task else cfg.tasks[0]
    if tcfg is None:
        raise ValueError(f"unknown task {task!r}; tasks: {[t.name for t in cfg.tasks]}")
    if not getattr(build_objective(tcfg), "generative", True):
        raise ValueError(
            f"task {tcfg.name!r} is a classification task: it generates nothing; "
            "use `lumina predict RECIPE --input FILES` to classify files, or --task to pick a generative task"
        )
    plugin, enc = plugins[tcfg.name], conditioners[tcfg.name]
    if conditions is None:
        val = build_dataset(tcfg, "val")
        conds = [val[i % len(val)].get("condition") for i in range(int(num))]
    else:
        conds = [_coerce_condition(c, enc) for c in conditions for _ in range(int(num))]
    kw = {**sampling_kwargs(tcfg), **overrides}
    dev = resolve_device(str(cfg.run.device))
    bs = max(1, int(tcfg.eval.batch_size))
    paths: list[Path] = []
    for start in range(0, len(conds), bs):
        chunk = conds[start : start + bs]
        samples = generate(
            model, plugin, enc, tcfg.name, chunk, device=dev, **{**kw, "seed": kw["seed"] + start}
        )
        samples = [s.detach().float().cpu() for s in samples]
        paths += list(plugin.write_preview(samples, chunk, Path(out_dir), f"{tcfg.name}_{start:05d}"))
    return paths


def evaluate(cfg: Any, checkpoint: str | Path | None = None, **overrides: Any) -> dict[str, float]:
    """Generate for the first ``eval.num_samples`` held-out items of every task (their conditions and
    shapes, the task's sampling settings, EMA weights), score with ``plugin.evaluate(samples, items,
    dataset)``; return ``{"<task>/<metric>": value}`` and write it to ``<run_dir>/metrics.json``."""
    from lumina_core.sampling import generate
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.evaluation import eval_splits

    cfg = as_recipe(cfg)
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    model, plugins, conditioners = load_run(cfg, ck)
    dev = resolve_device(str(cfg.run.device))
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}  # non-scalar results (a classifier's confusion matrix), metrics.json only
    for tcfg, (suffix, val) in ((t, split) for t in cfg.tasks for split in eval_splits(t)):
        plugin, enc = plugins[tcfg.name], conditioners[tcfg.name]
        items = [val[i] for i in range(min(int(tcfg.eval.num_samples), len(val)))]
        kw = {**sampling_kwargs(tcfg), **overrides}
        bs = max(1, int(tcfg.eval.batch_size))
        objective = build_objective(tcfg)
        if not getattr(objective, "generative", True):  # evaluates held-out items itself (a classifier)
            scores, extra = objective.evaluate(model, tcfg.name, plugin, enc, items, dev, bs, kw["rope_scaling"])
            metrics.update({f"{tcfg.name}/{k}{suffix}": float(v) for k, v in scores.items()})
            details[f"{tcfg.name}{suffix}"] = extra
            continue
        samples = []
        for start in range(0, len(items), bs):
            chunk = items[start : start + bs]
            out = generate(
                model, plugin, enc, tcfg.name,
                [it.get("condition") for it in chunk],
                shapes=[tuple(plugin.sample_shape(it["sample"])) for it in chunk],
                device=dev,
                **{**kw, "seed": kw["seed"] + start},
            )  # fmt: skip
            samples += [s.detach().float().cpu() for s in out]
        for k, v in plugin.evaluate(samples, items, val).items():
            metrics[f"{tcfg.name}/{k}{suffix}"] = float(v)
    run_dir = Path(cfg.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = (
        json.loads((ck / ckpt_io.META_FILE).read_text()).get("step")
        if (ck / ckpt_io.META_FILE).is_file()
        else None
    )
    record = {"checkpoint": str(ck), "step": step, "metrics": metrics}
    if details:
        record["details"] = details
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return metrics

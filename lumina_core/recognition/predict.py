"""Top-k labels of a user's files with a trained classification task (``lumina predict``).

Files are read by the task's plugin (:meth:`~lumina_core.plugin.ModalityPlugin.read_file`); a folder means
every file under it, recursively, in sorted order (hidden files left out), of the extensions the plugin
reads (``ModalityPlugin.read_extensions``; the folder's other files - captions, notes - are counted as
ignored, not tried). A file that cannot be decoded is skipped and counted, with its name and the reason, not
fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: what reading a broken file raises (PIL, soundfile, numpy ...)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError)


@dataclass
class Prediction:
    """One file's ``top`` labels: ``[(class name, probability), ...]``, most likely first."""

    path: Path
    top: list[tuple[str, float]]


@dataclass
class PredictionReport:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason): could not be decoded
    ignored: list[Path] = field(default_factory=list)  # files of the folders that are not the modality's files


def list_inputs(inputs: Sequence[str | Path], extensions: Sequence[str] = ()) -> tuple[list[Path], list[Path]]:
    """``(files, ignored)``: the files named, and the non-hidden files under the folders named (sorted) whose
    extension is one of ``extensions`` (all when empty); ``ignored`` holds the folders' other files (captions,
    notes), which are not tried. A file named on its own is always tried."""
    wanted = {e.lower().lstrip(".") for e in extensions}
    files: list[Path] = []
    ignored: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.parts[-1:])
            )
            if not found:
                raise ValueError(f"{p} is an empty folder: nothing to predict")
            kept = [f for f in found if not wanted or f.suffix[1:].lower() in wanted]
            if not kept:
                raise ValueError(
                    f"{p} holds {len(found)} file(s) but none with the extensions this modality reads "
                    f"({', '.join(sorted(wanted))}): nothing to predict"
                )
            files += kept
            ignored += [f for f in found if f not in kept]
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"--input {p} does not exist (expected a file or a folder of files)")
    return files, ignored


def classification_task(cfg: Any, task: str | None) -> Any:
    """The recipe's task to predict with: ``task``, or the first whose objective is not generative."""
    from lumina_core.training.task_facts import TaskFacts

    names = [str(t.name) for t in cfg.tasks]
    if task is not None:
        chosen = next((t for t in cfg.tasks if t.name == task), None)
        if chosen is None:
            raise ValueError(f"unknown task {task!r}; the recipe's tasks: {', '.join(names)}")
        if TaskFacts.of(chosen).generative:
            raise ValueError(f"task {task!r} is generative; `lumina predict` needs a classification task")
        return chosen
    for t in cfg.tasks:
        if not TaskFacts.of(t).generative:
            return t
    raise ValueError(
        f"the recipe has no classification task (tasks: {', '.join(names)}); use `lumina sample` to generate"
    )


def predict(
    cfg: Any,
    checkpoint: str | Path | None,
    inputs: Sequence[str | Path],
    top_k: int = 3,
    task: str | None = None,
    batch_size: int = 64,
) -> PredictionReport:
    """Classify every file of ``inputs`` with the recipe's classification task (EMA weights)."""
    import torch

    from lumina_core.config.typed import typed_recipe
    from lumina_core.plugin import ModalityPlugin
    from lumina_core.training.build import resolve_device
    from lumina_core.training.weights import load_run

    if top_k < 1:
        raise ValueError(f"top-k must be at least 1; got {top_k}")
    from lumina_core.registry import MODALITIES

    cfg = typed_recipe(cfg)
    tcfg = classification_task(cfg, task)
    plugin_class = MODALITIES.get(str(tcfg.modality.name))
    if plugin_class.read_file is ModalityPlugin.read_file:
        raise ValueError(f"the {plugin_class.name!r} modality cannot read files, so it cannot predict from them")
    files, ignored = list_inputs(inputs, plugin_class.read_extensions)  # before the checkpoint: input errors first
    run = load_run(cfg, checkpoint)
    model, chosen = run.model, run.task(tcfg.name)
    plugin, objective = chosen.plugin, chosen.objective
    report = PredictionReport(ignored=ignored)
    samples, kept = [], []
    for f in files:
        try:
            samples.append(plugin.read_file(f))
            kept.append(f)
        except DECODE_ERRORS as err:
            report.skipped.append((f, f"{type(err).__name__}: {err}".splitlines()[0][:200]))
    if not samples:
        return report
    dev = resolve_device(str(cfg.run.device))
    logits = objective.predict(
        model, tcfg.name, plugin, samples, dev, batch_size, chosen.sampling_settings().rope_scaling
    )
    probs = torch.softmax(logits, dim=-1)
    k = min(int(top_k), probs.shape[1])
    values, indices = probs.topk(k, dim=-1)
    for f, vs, ix in zip(kept, values.tolist(), indices.tolist(), strict=True):
        report.predictions.append(
            Prediction(f, [(objective.class_names[i], v) for i, v in zip(ix, vs, strict=True)])
        )
    return report

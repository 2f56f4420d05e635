"""Checkpoint formats: foreign checkpoint layouts that ``lumina convert --from NAME`` reads (and, for a format
that names ``layouts``, writes back: ``lumina convert --to NAME --layout LAYOUT``).

A format belongs to the plugin whose tokens its weights were trained on (the image plugin registers
``released`` and ``diffusers``, the two public formats of the Lumina-Next image model); the core knows only
this contract and writes every format's result the same way, as *our* format: a folder with
``model.safetensors`` (a :class:`LuminaModel` state dict holding the trunk and one task) and ``config.json``
(trunk config, the task's :class:`AdapterSpec`, the source, and whatever the format records). ``load_run`` and
``lumina sample --ckpt`` read that folder without knowing where the weights came from::

    fmt = CHECKPOINT_FORMATS.get("released")()          # registered by a plugin
    loaded = fmt.load("consolidated.00-of-01.pth", preset="2B")
    loaded.model.adapters[loaded.task].spec              # the task the checkpoint was trained for
    fmt.export(loaded, "out.safetensors", layout)        # a format with layouts writes one of them
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lumina_core.registry import CHECKPOINT_FORMATS


@dataclass
class LoadedCheckpoint:
    """A foreign checkpoint as our model.

    Attributes:
        model: a ``LuminaModel`` holding the trunk and the checkpoint's one task, weights loaded.
        task: the task's name in ``model.adapters``.
        extra: facts the format records in ``config.json`` beside the trunk and the task (e.g. the image
            format's patch size and channels); JSON-serialisable, keys other than the core's own.
    """

    model: Any
    task: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunWeights:
    """A training checkpoint of a run with one task, as a format needs it to write the model in a public layout
    (``lumina convert RUN DST --to NAME``; read by :func:`lumina_core.interop.to_public.read_run_weights`).

    Attributes:
        checkpoint: the checkpoint folder (``<run>/checkpoints/step_N``).
        step: its training step.
        which: ``"ema"`` or ``"model"`` (raw): which of its weights ``state`` holds.
        config: the trunk config the run trained (its recipe's ``model``).
        task: the run's task name (its adapter's key in ``state``).
        modality: the task's modality as the recipe gave it, ``{"name": ..., "params": {...}}``.
        state: the ``LuminaModel`` state dict (trunk and the task's adapter), as trained.
    """

    checkpoint: Path
    step: int
    which: str
    config: Any
    task: str
    modality: dict[str, Any]
    state: dict[str, Any]


class CheckpointFormat(abc.ABC):
    """Base class of a checkpoint format (registered in ``CHECKPOINT_FORMATS``).

    Subclass, implement :meth:`load`, register with ``@CHECKPOINT_FORMATS.register("name")``.
    """

    #: the registered name (``lumina convert --from NAME``)
    name: ClassVar[str] = ""
    #: one line for people: which files the format reads
    description: ClassVar[str] = ""
    #: what to check when a converted task does not fit a recipe's task (added to that error message)
    fit_advice: ClassVar[str] = ""
    #: the public layouts :meth:`export` writes, the default first (empty: the format is read-only)
    layouts: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def load(self, src: str | Path, preset: str | None = None) -> LoadedCheckpoint:
        """Read the checkpoint at ``src`` (a file or a folder). ``preset`` names the trunk configuration
        (``NextDiTConfig`` preset); None infers it from the tensors. Raises ValueError (or
        FileNotFoundError) saying what was expected and what was found."""

    def export(self, loaded: LoadedCheckpoint, dst: Path, layout: str) -> list[Path]:
        """Write ``loaded`` (a converted checkpoint read back) at ``dst`` in public layout ``layout`` (one of
        :attr:`layouts`); returns the files written. ValueError when the model is not one this format holds."""
        raise ValueError(f"checkpoint format {self.name!r} is read-only: it has no layout to export to")

    def from_run(self, run: RunWeights) -> LoadedCheckpoint:
        """The model a training run's checkpoint holds, as :meth:`export` takes it (the same as a converted
        checkpoint read back). ValueError, in one paragraph, when the run's model is not one this format holds."""
        raise ValueError(
            f"checkpoint format {self.name!r} does not write training runs: write the run as a converted checkpoint "
            "of a format that does, or export from a converted folder"
        )


def checkpoint_format(name: str) -> CheckpointFormat:
    """The registered format ``name``, built (an unknown name lists the known ones and where they come from)."""
    return CHECKPOINT_FORMATS.get(name)()


def fit_advice(name: str | None) -> str:
    """The advice of format ``name`` for a converted task that does not fit (empty when it is unknown here)."""
    from lumina_core.registry import RegistryError

    if not name:
        return ""
    try:
        fmt = CHECKPOINT_FORMATS.get(name)
    except RegistryError:  # converted where a plugin is installed that is not installed here
        return ""
    return str(getattr(fmt, "fit_advice", "") or "")


__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "LoadedCheckpoint",
    "RunWeights",
    "checkpoint_format",
    "fit_advice",
]

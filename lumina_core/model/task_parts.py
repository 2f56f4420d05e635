"""A task's own parts of the shared trunk's blocks, handed to a trunk family as one object.

    parts = TaskBlockParts.of_adapter(adapter)          # None when the task owns no block parts
    h, c  = trunk.encode_tokens(..., task_parts=parts)  # the family passes it on to run_blocks
    block i of stream s reads ctx.for_layer(i, *parts.stream(s).layer(i))

Some composition methods (``train.composition``) give every task weights of its own inside the shared blocks,
kept on the task's adapter and keyed by the block list ("stream") they belong to (``layers``,
``noise_refiner``, ``context_refiner``):

* ``task_modulation``: ``modulation[stream][i]`` maps the conditioning vector ``c`` to ``4 dim``, added to
  block ``i``'s own adaLN modulation (modulated streams only: never the unified family's context refiner);
* ``task_lora``: ``lora[stream][i]`` maps a projection's name (``wqkv``, ``wo``, ``w13``, ``w2``) to the
  task's low-rank update of it, added to the projection's output.

A family takes them all through one keyword, ``task_parts``, and hands it to :meth:`Trunk.run_blocks
<lumina_core.model.family.Trunk.run_blocks>`: a new kind of per-task part is a new field here, not a new
keyword of every family's ``encode_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from torch import nn

#: the adapter attributes that hold per-task block parts, and the field of :class:`TaskBlockParts` each fills
ADAPTER_ATTRIBUTES = {"task_modulation": "modulation", "task_lora": "lora"}


@dataclass(frozen=True)
class TaskBlockParts:
    """The running task's own parts of the trunk's blocks, by stream name (see the module docstring); a field
    is None when the task has no part of that kind, and a stream a field does not name has none there."""

    modulation: Mapping[str, Sequence[nn.Module]] | None = None
    lora: Mapping[str, Sequence[Mapping[str, nn.Module]]] | None = None

    @classmethod
    def of_adapter(cls, adapter: nn.Module) -> TaskBlockParts | None:
        """The parts a task adapter holds (``adapter.task_modulation``, ``adapter.task_lora``), or None when
        it holds none."""
        found = {field: getattr(adapter, attr, None) for attr, field in ADAPTER_ATTRIBUTES.items()}
        return cls(**found) if any(v is not None for v in found.values()) else None

    def stream(self, name: str | None) -> StreamParts:
        """The parts of the block list called ``name`` (None: a list the trunk does not name)."""
        return StreamParts(**{f.name: _of_stream(getattr(self, f.name), name) for f in fields(self)})


@dataclass(frozen=True)
class StreamParts:
    """One stream's share of :class:`TaskBlockParts`: per-block sequences, or None."""

    modulation: Sequence[nn.Module] | None = None
    lora: Sequence[Mapping[str, nn.Module]] | None = None

    def layer(self, index: int) -> tuple[nn.Module | None, Mapping[str, nn.Module] | None]:
        """``(modulation, lora)`` of block ``index`` of the stream, each None where the task has none."""
        return (
            None if self.modulation is None else self.modulation[index],
            None if self.lora is None else self.lora[index],
        )


def _of_stream(parts: Mapping[str, Sequence] | None, name: str | None) -> Sequence | None:
    """The per-block sequence ``parts`` holds for stream ``name``; None where it holds none."""
    return parts[name] if parts is not None and name is not None and name in parts else None

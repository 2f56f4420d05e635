"""A recipe's ``train.lora`` block as the settings :mod:`lumina_core.finetune.lora` applies (training, the
adapter file the run writes, and loading it back all read it through here)."""

from __future__ import annotations

from typing import Any


def resolved_targets(targets: Any, adapt_conditioning: Any) -> list[str]:
    """The linear-layer patterns a ``train.lora`` block adapts: its ``targets`` as given; without them (None)
    the default block projections, plus the conditioning paths
    (:data:`~lumina_core.finetune.lora.CONDITIONING_TARGETS`) when ``adapt_conditioning`` is on. A recipe that
    names its targets gets exactly those."""
    from lumina_core.finetune.lora import CONDITIONING_TARGETS, DEFAULT_TARGETS

    if targets:
        return list(targets)
    return list(DEFAULT_TARGETS) + (list(CONDITIONING_TARGETS) if adapt_conditioning else [])


def lora_settings(cfg: Any) -> Any:
    """``train.lora`` as :class:`lumina_core.finetune.lora.LoraSettings` (None without it)."""
    from lumina_core.finetune.lora import DEFAULT_TRAIN_ALSO, LoraSettings

    lc = cfg.train.lora
    if lc is None:
        return None
    also = getattr(lc, "train_also", None)
    also = list(DEFAULT_TRAIN_ALSO) if also is None else list(also)
    targets = resolved_targets(lc.targets, getattr(lc, "adapt_conditioning", False))
    return LoraSettings(int(lc.rank), float(lc.alpha), float(lc.dropout), targets, also)

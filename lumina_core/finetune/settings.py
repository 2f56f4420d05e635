"""A recipe's ``train.lora`` block as the settings :mod:`lumina_core.finetune.lora` applies (training, the
adapter file the run writes, and loading it back all read it through here)."""

from __future__ import annotations

from typing import Any


def lora_settings(cfg: Any) -> Any:
    """``train.lora`` as :class:`lumina_core.finetune.lora.LoraSettings` (None without it)."""
    from lumina_core.finetune.lora import DEFAULT_TARGETS, LoraSettings

    lc = cfg.train.lora
    if lc is None:
        return None
    return LoraSettings(int(lc.rank), float(lc.alpha), float(lc.dropout), list(lc.targets or DEFAULT_TARGETS))

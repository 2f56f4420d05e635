"""Telling a LoRA run's checkpoint apart from a model's, and saying how to sample one.

A run trained with ``train.lora`` writes checkpoints that hold the adapter's factors only (``lora_A`` /
``lora_B``, and the fully trained modules that ``train.lora.train_also`` names): the frozen base lives in the
run's ``train.init_from``. Loading such a checkpoint with a recipe that has no ``train.lora`` would otherwise end
in a list of every base weight "missing"; :func:`lora_run_message` says what the checkpoint is instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def is_lora_checkpoint(keys: Iterable[str]) -> bool:
    """True when a checkpoint's weights include LoRA factors (peft's ``.lora_A.`` / ``.lora_B.``): only a
    ``train.lora`` run saves them (a whole model's checkpoint never does; adapters are merged first)."""
    return any(".lora_A." in k or ".lora_B." in k for k in keys)


def _run_dir(ck: Path) -> Path | None:
    """The run folder of a checkpoint folder ``<run>/checkpoints/<step>`` (None when it is not laid out so)."""
    for path in (Path(ck), Path(ck).resolve()):  # as given (relative stays relative), then without links
        if path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
            return path.parent.parent
    return None


def _base_of(run: Path | None) -> str | None:
    """``train.init_from`` of the run's saved recipe (None when unknown)."""
    if run is None:
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.select(OmegaConf.load(run / "config.yaml"), "train.init_from")
    except Exception:  # noqa: BLE001 - an unreadable config only loses the hint
        return None


def lora_run_message(ck: Path) -> str:
    """One paragraph for loading the checkpoint ``ck`` of a LoRA run with a recipe that has no ``train.lora``:
    what it holds and the two ways to sample it (the run's own ``config.yaml``, or ``--lora`` on the base)."""
    run = _run_dir(ck)
    base = _base_of(run) or "<the base checkpoint it was trained from>"
    config = f"{run}/config.yaml" if run else "<the run>/config.yaml"
    adapter = f"{run}/lora/adapter.safetensors" if run else "<the run>/lora/adapter.safetensors"
    return (
        f"{ck} is a checkpoint of a LoRA run (train.lora): it holds the adapter's factors only, not a model, and "
        f"this recipe has no train.lora, so it expects a whole model. Sample it with the run's own recipe, which "
        f"names the base (train.init_from) and the adapter settings: `lumina sample {config} --ckpt {ck}`; or "
        f"sample the base with the adapter merged in: `lumina sample RECIPE --ckpt {base} --lora {adapter}` "
        "(add :SCALE to the adapter path to weaken or strengthen it)."
    )


def missing_base_message(ck: Path) -> str:
    """One paragraph for a recipe with ``train.lora`` but no ``train.init_from`` asked to load a LoRA run: the
    adapter alone is not a model."""
    run = _run_dir(ck)
    base = _base_of(run)
    hint = f"train.init_from={base}" if base else "train.init_from=<the base checkpoint>"
    return (
        f"the recipe has train.lora but no train.init_from: the LoRA checkpoint {ck} holds the adapter only, and "
        f"it must be applied to the base it was trained on. Add {hint} (or sample with the run's own "
        f"config.yaml, which names it)."
    )

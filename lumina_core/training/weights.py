"""A run's weights: ``load_run`` (a trained run, ready to sample), ``load_weights`` (a checkpoint into built
parts), ``prepare_weights`` (``train.init_from`` and the ``train.lora`` adapter before training) and
``describe_mismatch`` (why a checkpoint does not fit the recipe, in one paragraph).

    run = load_run(cfg, "last")               # RunParts: the model and its tasks, EMA weights, eval mode

A LoRA run (``train.lora``) loads its frozen base (``train.init_from``) first, then the adapter, then merges it
into the base for sampling; its settings are :func:`lumina_core.finetune.settings.lora_settings`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumina_core.config.typed import as_dict, typed_recipe
from lumina_core.training.build import RunParts, build_run, load_trainable, resolve_device, trainable_modules

__all__ = ["describe_mismatch", "load_run", "load_weights", "prepare_weights"]


def describe_mismatch(
    ck: Path, cfg: Any, expected: dict[str, Any], weights: dict[str, Any], exc: Exception
) -> str:
    """Why a checkpoint's weights do not fit the recipe's model: missing and unexpected keys, shapes that
    differ, and the recipe values that differ from the ones the checkpoint was trained with."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} -> {tuple(expected[k].shape)}"
        for k in set(expected) & set(weights)
        if tuple(weights[k].shape) != tuple(expected[k].shape)
    )
    lines = [f"the checkpoint {ck} does not fit the model this recipe builds"]
    for what, keys in (
        ("missing from the checkpoint", missing),
        ("in the checkpoint but not in the model", unexpected),
        ("shapes that differ (checkpoint -> model)", shapes),
    ):
        if keys:
            lines.append(f"{what} ({len(keys)}): {', '.join(keys[:6])}" + (", ..." if len(keys) > 6 else ""))
    if not (missing or unexpected or shapes):
        lines.append(str(exc).splitlines()[0])
    meta_file = ck / "meta.json"
    meta: dict[str, Any] = {}
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            meta = {}
    trained = meta.get("model") or {}
    composition = _composition_difference(meta, cfg)
    if composition:
        lines.append(composition)
    if trained:
        now = as_dict(typed_recipe(cfg).model)
        diffs = [
            f"model.{k} is {trained.get(k)!r} in the checkpoint and {now.get(k)!r} in the recipe"
            for k in sorted(set(trained) | set(now))
            if trained.get(k) != now.get(k)
        ]
        if diffs:
            lines.append("recipe values that differ: " + "; ".join(diffs))
    return ". ".join(lines) + ". Resume with the recipe the run was trained with, or start a new run."


def _composition_difference(meta: dict[str, Any], cfg: Any) -> str | None:
    """The line naming ``train.composition`` when the checkpoint was trained with other composition methods
    than the recipe names (methods such as task_embedding and task_modulation add weights to the model)."""
    recipe = meta.get("recipe")
    if not isinstance(recipe, dict) or "composition" not in (recipe.get("train") or {}):
        return None
    from lumina_core.training.composition import composition_names

    then = composition_names(recipe["train"]["composition"])
    now = composition_names(as_dict(typed_recipe(cfg).train).get("composition"))
    if then == now:
        return None
    return (
        f"the checkpoint was trained with train.composition=[{','.join(then)}] and the recipe names "
        f"[{','.join(now)}]: add 'train.composition=[{','.join(then)}]' to the command"
    )


def load_run(
    cfg: Any, checkpoint: str | Path | None = None, weights: str = "ema", device: str | None = None
) -> RunParts:
    """A trained run's :class:`RunParts` (the model and its tasks), in eval mode on ``device``.

    ``checkpoint``: a checkpoint or run directory, None / ``"last"`` for the run's newest checkpoint, or a
    converted checkpoint (``lumina convert`` of released or diffusers weights; its image task is loaded as
    the recipe's, see :func:`lumina_core.interop.formats.converted_state_dict`);
    ``weights``: ``"ema"`` (default, what previews and evaluation use) or ``"model"`` (raw weights).
    """
    from lumina_core.training import checkpoint as ckpt_io

    cfg = typed_recipe(cfg)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model'; got {weights!r}")
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    parts = build_run(cfg)
    lora = cfg.train.lora is not None
    if lora and not cfg.train.init_from and not ckpt_io.is_converted(ck):
        from lumina_core.finetune.runs import missing_base_message

        raise ckpt_io.CheckpointError(missing_base_message(ck))
    if lora:
        cfg = _as_the_run_trained(cfg, ck)
        prepare_weights(parts, cfg)  # the frozen base the adapter was trained on, then the adapter
    load_weights(parts, cfg, ck, weights, lora=lora)
    if lora:
        from lumina_core.finetune.lora import merge_lora

        merge_lora(parts.model)  # sample on the trunk's fast route
    dev = device or resolve_device(str(cfg.run.device))
    parts.model.to(dev).eval()
    for task in parts.tasks.values():
        task.conditioner.to(dev).eval()
        task.plugin.to(dev)
    parts.checkpoint = ck
    return parts


#: ``train.lora`` keys that decide which modules carry factors: a LoRA run's checkpoint is loaded with the values
#: its run trained with (a run recorded before a key existed reads as it trained, recipe_changes._BEFORE_THE_KEY)
_ADAPTER_SHAPE_KEYS = ("adapt_conditioning",)


def _as_the_run_trained(cfg: Any, ck: Path) -> Any:
    """``cfg`` with the ``train.lora`` keys of :data:`_ADAPTER_SHAPE_KEYS` set as the run of checkpoint ``ck``
    recorded them, when it recorded a recipe: the adapter must be built with the modules the run adapted (a run
    from before ``adapt_conditioning`` adapted the blocks' projections only), whatever today's default."""
    from lumina_core.training.recipe_changes import recorded_recipe

    recorded = recorded_recipe(ck)
    lora = getattr(getattr(recorded[0], "train", None), "lora", None) if recorded else None
    if lora is None or isinstance(recorded[0], dict):
        return cfg
    changed = {k: getattr(lora, k) for k in _ADAPTER_SHAPE_KEYS if getattr(lora, k) != getattr(cfg.train.lora, k)}
    if not changed:
        return cfg
    cfg = copy.deepcopy(cfg)
    for key, value in changed.items():
        setattr(cfg.train.lora, key, value)
    return cfg


def load_weights(
    parts: RunParts, cfg: Any, ck: Path, weights: str = "ema", lora: bool = False, start_parts: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Load checkpoint ``ck`` (a run's checkpoint folder or a converted checkpoint) into ``parts``: the EMA
    weights when there are some and ``weights == "ema"``, else the raw ones; ``lora``: the adapter only.
    ``start_parts``: adapter attributes (``task_modulation``...) that may be absent from the checkpoint and then
    keep the values they were built with. Returns ``{task: [its parts so kept]}``."""
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.build import trainable_state

    mods = trainable_modules(parts.model, parts.conditioners)
    if ckpt_io.is_converted(ck):
        expected = {k: v.detach() for k, v in trainable_state(mods).items()}
        state, kept = _with_start_parts(expected, _converted_weights(ck, parts.model, mods), start_parts)
        load_trainable(mods, state)
        return kept
    have_ema = (ck / ckpt_io.EMA_FILE).is_file()
    state = ckpt_io.load_weights(ck, "ema" if weights == "ema" and have_ema else "model")
    expected = {k: v.detach() for k, v in trainable_state(mods, lora=lora).items()}
    if not lora:
        from lumina_core.finetune.runs import is_lora_checkpoint, lora_run_message

        if is_lora_checkpoint(state):
            raise ckpt_io.CheckpointError(lora_run_message(ck))
    elif cfg.train.lora.train_also is None:  # the default: a run from before train_also trained the factors only
        from lumina_core.finetune.lora import stop_full_training

        absent = [k for k in expected if k not in state and ".lora_" not in k]
        if absent and set(state) <= set(expected) and all(k.startswith("model.") for k in absent):
            stop_full_training(parts.model, [k[len("model.") :] for k in absent])
            expected = {k: v for k, v in expected.items() if k not in absent}
    state, kept = _with_start_parts(expected, state, start_parts)
    try:
        load_trainable(mods, state, lora=lora)
    except (RuntimeError, ValueError) as exc:
        raise ckpt_io.CheckpointError(describe_mismatch(ck, cfg, expected, state, exc)) from exc
    return kept


def _adapter_part(key: str, parts: Sequence[str]) -> tuple[str | None, str | None]:
    """``(task, part)`` of a weight ``model.adapters.<task>.<part>...`` whose part is one of ``parts``."""
    bits = key.split(".")
    if len(bits) >= 4 and bits[:2] == ["model", "adapters"] and bits[3] in parts:
        return bits[2], bits[3]
    return None, None


def _with_start_parts(
    expected: dict[str, Any], state: dict[str, Any], parts: Sequence[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``state`` completed with the model's own values (``expected``) of every adapter part of ``parts`` that it
    holds no weight of, and ``{task: [those parts]}``. A part with some of its weights in ``state`` is left
    alone: the strict load then names what is missing."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key in expected:
        task, part = _adapter_part(key, parts)
        if task is not None:
            groups.setdefault((task, part), []).append(key)
    filled, kept = dict(state), {}
    for (task, part), keys in groups.items():
        if not any(k in state for k in keys):
            kept.setdefault(task, []).append(part)
            filled.update({k: expected[k] for k in keys})
    return filled, kept


def prepare_weights(parts: RunParts, cfg: Any) -> None:
    """Before training (or loading a LoRA run): load ``train.init_from`` (EMA weights) and inject the
    ``train.lora`` adapter, which freezes everything else."""
    from lumina_core.training import checkpoint as ckpt_io

    tc = cfg.train
    if tc.init_from:
        if str(tc.init_from) != "last" and not Path(str(tc.init_from)).exists():
            raise FileNotFoundError(
                f"train.init_from={tc.init_from}: no such checkpoint. Give a run's checkpoint folder (e.g. "
                "runs/<name>/checkpoints/last) or convert released / diffusers weights first: `lumina convert "
                "SOURCE DEST --from released|diffusers` and set train.init_from=DEST"
            )
        ck = ckpt_io.resolve_weights(str(tc.init_from), cfg.run.output_dir)
        kept = load_weights(parts, cfg, ck, "ema", start_parts=parts.composition.adapter_parts)
        if kept:
            listed = "; ".join(f"{task}: {', '.join(own)}" for task, own in sorted(kept.items()))
            print(
                f"train.init_from: {ck} has no weights for the tasks' own parts that train.composition adds "
                f"({listed}); they start at zero updates, so the run starts from the loaded model"
            )
    if tc.lora is not None:
        from lumina_core.finetune.lora import apply_lora
        from lumina_core.finetune.settings import lora_settings

        settings = lora_settings(cfg)
        if not apply_lora(parts.model, settings):
            raise ValueError(f"train.lora.targets {settings.targets} match no linear layer of the model")
        for enc in parts.conditioners.values():  # a class table stays as the base run trained it
            enc.requires_grad_(False)


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

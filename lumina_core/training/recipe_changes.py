"""What a resume changes: the recipe a checkpoint was trained with against the recipe that resumes it.

Exact resume means the run continues as if it had never stopped: the same weights after step N + k as an
uninterrupted run, bit for bit. That holds only if every key that enters a training step is unchanged: the
seed, the data, the batch sizes, the mixing of tasks, the optimiser and its schedule, the precision, the
model. Some keys decide nothing about the steps (:data:`BOOKKEEPING`: how many steps, how often to log, save
and preview, where the run lives, how to sample and evaluate); ``train.max_steps`` is the one a resume
usually changes. A change to any other key makes the resumed run a different run, which
:func:`lumina_core.training.api.train` refuses unless asked (``--allow-changes``).

Recipes are compared as flat ``{dotted.key: value}`` maps of the resolved recipe (schema defaults filled
in), so a key left at its default and the same value written out are the same.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: keys (``fnmatch`` patterns over dotted keys) whose change leaves every training step as it was
BOOKKEEPING = (
    "run.name",
    "run.output_dir",
    "train.max_steps",
    "train.log_every",
    "train.ckpt_every",
    "train.preview_every",
    # the number of processes has its own resume check: it continues with a warning (docs/distributed.md)
    "train.devices",
    "train.num_nodes",
    "tasks.*.sampling.*",
    "tasks.*.eval.*",
)

_ABSENT = "(absent)"


@dataclass(frozen=True)
class KeyChange:
    key: str
    before: Any
    after: Any

    @property
    def breaks_exact_resume(self) -> bool:
        return not any(fnmatch.fnmatchcase(self.key, pattern) for pattern in BOOKKEEPING)

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.before)} -> {_show(self.after)}"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}, "tasks": [{"name": "a"}]}`` -> ``{"train.lr": 1e-3, "tasks.0.name": "a"}``.
    Lists of mappings are indexed; lists of plain values stay whole (``train.betas: [0.9, 0.999]``); an
    empty mapping is kept as a value, so ``params: {}`` and a missing ``params`` differ."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(tree, list) and any(isinstance(v, Mapping) for v in tree):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: tree}


def recipe_tree(recipe: Any) -> dict[str, Any]:
    """A typed recipe (or a plain mapping) as the plain JSON tree that checkpoints record: tuples become
    lists, anything else JSON cannot hold becomes its text."""
    if dataclasses.is_dataclass(recipe) and not isinstance(recipe, type):
        recipe = dataclasses.asdict(recipe)
    return json.loads(json.dumps(recipe, default=str))


#: trunk keys whose recipe default is None ("the preset's, else the trunk's default"); recipes recorded while the
#: schema wrote the trunk's default out compare equal to today's None
_TRUNK_DEFAULTED = ("family", "n_refiner_layers", "caption_rope_fraction", "unified_variant")


def _trunk_defaults_filled(flat: dict[str, Any]) -> dict[str, Any]:
    """``model.<key>: None`` of :data:`_TRUNK_DEFAULTED` replaced by the value the trunk uses (the preset's row,
    else :class:`lumina_core.model.NextDiTConfig`'s default)."""
    from lumina_core.model.config import PRESETS, NextDiTConfig

    row = PRESETS.get(flat.get("model.preset") or "", {})
    defaults = {f.name: f.default for f in dataclasses.fields(NextDiTConfig)}
    out = dict(flat)
    for key in _TRUNK_DEFAULTED:
        if f"model.{key}" in out and out[f"model.{key}"] is None:
            out[f"model.{key}"] = row.get(key, defaults[key])
    return out


def changes(before: Any, after: Any) -> list[KeyChange]:
    """Every key whose value differs between two recipes (typed recipes or their plain trees), sorted by key."""
    a = _trunk_defaults_filled(flatten(recipe_tree(before)))
    b = _trunk_defaults_filled(flatten(recipe_tree(after)))
    return [
        KeyChange(k, a.get(k, _ABSENT), b.get(k, _ABSENT))
        for k in sorted(set(a) | set(b))
        if a.get(k, _ABSENT) != b.get(k, _ABSENT)
    ]


#: keys added to the schema with a default that differs from what runs did before the key existed: a recorded
#: recipe without the key is read with the value its run trained with (so resuming it is no change, and setting
#: the key to that value on the command line matches it)
_BEFORE_THE_KEY: dict[tuple[str, ...], Any] = {
    ("train", "lora", "lr_ratio"): 1.0,  # before LoRA+ every factor learned at one rate
    ("train", "lora", "adapt_conditioning"): False,  # before it, the blocks' projections only
}


def _as_trained_before_new_keys(recipe: Any) -> Any:
    """``recipe`` (a plain recorded tree) with each key of :data:`_BEFORE_THE_KEY` it lacks set to the value its
    run used; a section that is absent or null (no LoRA) is left alone."""
    if not isinstance(recipe, dict):
        return recipe
    out = copy.deepcopy(recipe)
    for path, value in _BEFORE_THE_KEY.items():
        node = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] not in node:
            node[path[-1]] = value
    return out


def recorded_recipe(checkpoint: Path) -> tuple[Any, str] | None:
    """The recipe ``checkpoint`` was trained with and where it was found: its ``meta.json`` (``recipe``,
    written since checkpoints record it), else the ``config.yaml`` of the run folder it sits in; None when
    neither says.

    The recorded recipe is merged over today's schema, so a key added to the schema since (with its default)
    is no change, except a key whose default differs from what runs did before it existed
    (:data:`_BEFORE_THE_KEY`), which is read as the run trained; one the schema no longer has is compared as it
    was recorded."""
    from omegaconf import OmegaConf

    from lumina_core.config.typed import typed_recipe

    meta = checkpoint / "meta.json"
    if meta.is_file():
        try:
            recipe = json.loads(meta.read_text()).get("recipe")
        except (OSError, ValueError):
            recipe = None
        if isinstance(recipe, dict):
            recipe = _as_trained_before_new_keys(recipe)
            try:
                return typed_recipe(recipe), str(meta)
            except Exception:  # noqa: BLE001 - keys today's schema does not know: compare as recorded
                return recipe, str(meta)
    config = checkpoint.parent.parent / "config.yaml"
    if config.is_file():
        try:
            tree = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
            return typed_recipe(_as_trained_before_new_keys(tree)), str(config)
        except Exception:  # noqa: BLE001 - an old or hand-edited config that no longer fits the schema
            return None
    return None


def _show(value: Any) -> str:
    return value if value == _ABSENT else json.dumps(value)

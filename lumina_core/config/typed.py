"""A recipe as typed objects: the one conversion from OmegaConf to the schema's dataclasses.

Recipes are read, overridden and validated as OmegaConf nodes (``config/loader.py``, ``config/validate.py``);
every command then converts the recipe once, here, and the run's code reads plain dataclasses
(:class:`~lumina_core.config.schema.RecipeConfig`) whose ``params`` are plain dicts and lists - nothing past this
point asks "is this a config node".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lumina_core.config.schema import Component, RecipeConfig


def typed_recipe(cfg: Any) -> RecipeConfig:
    """A :class:`RecipeConfig` from a recipe (a ``DictConfig``, a plain mapping or a ``RecipeConfig``): merged
    over the schema's defaults, interpolations resolved. A ``RecipeConfig`` is returned as it is."""
    if isinstance(cfg, RecipeConfig):
        return cfg
    from omegaconf import OmegaConf

    node = OmegaConf.merge(OmegaConf.structured(RecipeConfig), cfg)
    return OmegaConf.to_object(node)


def recipe_node(recipe: RecipeConfig) -> Any:
    """The recipe back as an OmegaConf node (to save ``config.yaml`` or apply overrides)."""
    from omegaconf import OmegaConf

    return OmegaConf.structured(recipe)


def as_dict(value: Any) -> Any:
    """Dataclasses (a section of a typed recipe) to plain dicts; anything else unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def component_spec(component: Component | str | dict | None) -> Any:
    """A component as a registry's ``build`` takes it: ``{"name": ..., "params": {...}}`` (bare names and
    None unchanged)."""
    if isinstance(component, Component):
        return {"name": component.name, "params": dict(component.params)}
    return component

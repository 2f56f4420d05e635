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
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=False)
    node = OmegaConf.merge(OmegaConf.structured(RecipeConfig), normalise_components(dict(cfg)))
    # values still to be given ("???", e.g. a local weights path) stay as they are: whoever builds that
    # component says what is missing
    tree = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return _instantiate(RecipeConfig, tree)


def _instantiate(cls: type, tree: dict) -> Any:
    """The schema dataclass ``cls`` from a plain tree already checked against it (OmegaConf merged it)."""
    import typing

    hints = typing.get_type_hints(cls)
    nested = component_fields(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in tree:
            continue
        value, kind = tree[f.name], nested.get(f.name)
        if kind == "component" and isinstance(value, dict):
            value = Component(**value)
        elif kind == "component" and isinstance(value, list):
            value = [Component(**v) if isinstance(v, dict) else v for v in value]
        elif dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = _instantiate(kind, value)
        elif dataclasses.is_dataclass(kind) and isinstance(value, list):
            value = [_instantiate(kind, v) for v in value]
        elif typing.get_origin(hints[f.name]) is tuple and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


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
    """A component as plain data, ``{"name": ..., "params": {...}}`` (for manifests and sampling settings;
    registries build from a :class:`Component` directly). Bare names and None stay as they are."""
    if isinstance(component, Component):
        from lumina_core.registry import parse_component

        spec = parse_component(component)
        return {"name": spec.name, "params": dict(spec.params)}
    return component


def component_fields(cls: type) -> dict[str, Any]:
    """``{field: nested dataclass or "component"}`` for the fields of a schema dataclass that hold a
    :class:`Component` or another schema dataclass (lists of dataclasses included)."""
    import typing

    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        args = [a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)]
        for a in args:
            inner = typing.get_args(a)[0] if typing.get_origin(a) is list and typing.get_args(a) else a
            if inner is Component:
                out[name] = "component"
            elif dataclasses.is_dataclass(inner):
                out[name] = inner
    return out


def normalise_components(tree: Any, cls: type = RecipeConfig) -> Any:
    """A plain recipe tree with every component written as a bare name (``solver: euler``) expanded to
    ``{name: euler}``: both spellings are accepted, the schema holds the second."""
    if not isinstance(tree, dict):
        return tree
    out = dict(tree)
    for key, kind in component_fields(cls).items():
        value = out.get(key)
        if kind == "component":
            if isinstance(value, str) and not value.startswith("${") and value != "???":
                out[key] = {"name": value}
            elif isinstance(value, list):  # a list of components (train.composition): bare names too
                out[key] = [
                    {"name": v} if isinstance(v, str) and not v.startswith("${") and v != "???" else v
                    for v in value
                ]
        elif isinstance(value, list):
            out[key] = [normalise_components(v, kind) for v in value]
        elif isinstance(value, dict):
            out[key] = normalise_components(value, kind)
    return out

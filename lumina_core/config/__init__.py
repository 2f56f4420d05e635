"""Recipe configuration: the schema (``schema.py``), loading with ``key=value`` overrides and validation.

    from lumina_core.config import load_recipe, validate_recipe
    cfg = load_recipe("recipes/image/shapes_tiny.yaml", overrides=["train.max_steps=10"])
    problems = validate_recipe(cfg)     # list of "path: message" strings, empty when valid

``load_recipe`` raises :class:`RecipeError` listing every problem at once. The loader (omegaconf) is imported
on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_recipe", "validate_recipe", "apply_overrides", "RecipeError", "recipe_header_command"]


def __getattr__(name: str) -> Any:
    if name in ("load_recipe", "apply_overrides", "RecipeError", "recipe_header_command"):
        from lumina_core.config import loader

        return getattr(loader, name)
    if name == "validate_recipe":
        from lumina_core.config.validate import validate_recipe

        return validate_recipe
    raise AttributeError(f"module 'lumina_core.config' has no attribute {name!r}")

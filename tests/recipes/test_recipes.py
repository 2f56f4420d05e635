"""Every shipped recipe loads, validates against the schema and the registry, and starts with the command
that runs it (``# Run: lumina train recipes/<modality>/<name>.yaml``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from fixtures.recipes import recipe_id, shipped_recipes

from lumina_core.config import load_recipe, recipe_header_command

ROOT = Path(__file__).resolve().parents[2]


RECIPES = shipped_recipes()
_id = recipe_id


def test_recipes_are_shipped():
    assert RECIPES, "no recipe under recipes/ - at least the modality recipes should be shipped"
    for path, base in RECIPES:
        if base == ROOT:
            assert path.parent.parent.name == "recipes", (
                f"{path}: recipes live in recipes/<modality>/<name>.yaml"
            )


@pytest.mark.parametrize("item", RECIPES, ids=_id)
def test_recipe_header_gives_the_command(item):
    path, base = item
    command = recipe_header_command(path)
    assert command, (
        f"{path}: the first lines must be a comment '# Run: lumina train {path.relative_to(base)}'"
    )
    words = shlex.split(command)
    assert words[0] == "lumina" and words[1] in ("train", "sample", "eval"), (
        f"{path}: header runs {command!r}"
    )
    # a plugin's recipe may be named from the repository root or from the plugin's own root
    allowed = {str(path.relative_to(ROOT)), str(path.relative_to(base))}
    assert words[2] in allowed, f"{path}: header names {words[2]!r}, expected one of {sorted(allowed)}"


@pytest.mark.parametrize("item", RECIPES, ids=_id)
def test_recipe_loads_and_validates(item):
    path, _base = item
    cfg = load_recipe(path)  # raises RecipeError listing every problem
    assert len(cfg.tasks) >= 1
    assert len({t.name for t in cfg.tasks}) == len(cfg.tasks)


@pytest.mark.parametrize("item", RECIPES, ids=_id)
def test_recipe_tokens_are_no_wider_than_the_trunk(item):
    """The final layer maps the trunk width to the token width, so wider tokens keep the initial noise in the
    directions it cannot reach (tones_tiny at 320 and melodies_tiny at 256 values on a 128-wide trunk did)."""
    from lumina_core.config.typed import component_spec, typed_recipe
    from lumina_core.registry import MODALITIES
    from lumina_core.training.build import model_config

    cfg = typed_recipe(load_recipe(item[0]))
    dim = model_config(cfg, {}).dim
    for task in cfg.tasks:
        try:
            plugin = MODALITIES.build(component_spec(task.modality))
        except ValueError as err:  # e.g. the 2B recipe's autoencoder loads from a user's local path
            if "needs `path`" not in str(err):
                raise
            pytest.skip(f"{item[0]}: {err}")
        spec = plugin.adapter_spec()
        assert spec.out_dim <= dim, (
            f"{item[0]}: task {task.name!r} has {spec.out_dim}-wide tokens on a {dim}-wide trunk"
        )

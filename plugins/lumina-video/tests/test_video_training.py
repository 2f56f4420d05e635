"""The shipped recipe, end to end through the training API: it must learn the captions' motion and colour."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "moving_shapes_tiny.yaml"


def test_recipe_header_and_validation():
    from lumina_core.config import load_recipe

    assert RECIPE.read_text().splitlines()[0] == (
        "# Run: lumina train plugins/lumina-video/recipes/moving_shapes_tiny.yaml"
    )
    cfg = load_recipe(str(RECIPE))
    task = cfg.tasks[0]
    assert (task.modality.name, task.data.name, task.conditioning.encoder.name) == (
        "video",
        "moving_shapes",
        "minilm",
    )


@pytest.mark.slow
def test_recipe_trains_to_above_chance_direction_accuracy(tmp_path):
    """The whole recipe (minutes on a CPU), then the checker on 64 held-out captions."""
    from lumina_core.config import load_recipe
    from lumina_core.training.api import evaluate, train

    cfg = load_recipe(str(RECIPE), overrides=[f"run.output_dir={tmp_path}", "train.ckpt_every=100000"])
    train(cfg)
    m = evaluate(cfg, None)
    assert m["video/blob_found"] > 0.9, m
    assert m["video/colour_acc"] > 3 * m["video/colour_chance"], m
    assert m["video/direction_acc"] > 1.5 * m["video/direction_chance"], m

"""End to end: a short class-conditioned run of the point-cloud recipe lands its classes above chance."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "pointcloud" / "shapes_tiny.yaml"


def test_recipe_loads_and_validates() -> None:
    from lumina_core.config import load_recipe

    cfg = load_recipe(str(RECIPE))
    assert RECIPE.read_text().splitlines()[0] == "# Run: lumina train recipes/pointcloud/shapes_tiny.yaml"
    assert cfg.tasks[0].modality.name == "pointcloud" and cfg.tasks[0].data.name == "shapes_lite"


@pytest.mark.slow
def test_short_training_run_generates_the_right_classes(tmp_path: Path) -> None:
    from lumina_core.config import load_recipe
    from lumina_core.training.api import evaluate, train

    overrides = [
        f"run.output_dir={tmp_path / 'run'}",
        "train.max_steps=250", "train.warmup_steps=20", "train.ckpt_every=1000", "train.log_every=50",
        "model.dim=64", "model.n_layers=2",
        "tasks.0.modality.params.num_points=128",
        "tasks.0.data.params.num_points=128", "tasks.0.data.params.num_items=256",
        "tasks.0.data.params.classes=[sphere,torus,box_on_cylinder]", "tasks.0.data.params.emd=false",
        "tasks.0.data.val_params.num_items=24",
        "tasks.0.conditioning.encoder.params.num_classes=3", "tasks.0.conditioning.encoder.params.dim=64",
        "tasks.0.eval.num_samples=24", "tasks.0.sampling.steps=10",
        # this short run was measured with unscaled tokens and guidance 2 (0.917 class accuracy); with the
        # recipe's scale 2 / no guidance it reached only 0.54 after 250 steps (those pay off in longer runs)
        "tasks.0.modality.params.scale=1.0", "tasks.0.sampling.cfg_scale=2.0",
    ]  # fmt: skip
    cfg = load_recipe(str(RECIPE), overrides=overrides)
    train(cfg)
    metrics = evaluate(cfg, None)
    assert metrics["shapes/nn_class_chance"] == pytest.approx(1 / 3)
    assert metrics["shapes/nn_class_acc_real"] >= 0.9  # the classes are separable by nearest reference
    assert metrics["shapes/nn_class_acc"] >= 0.6  # ~0.9 measured; chance is 0.33
    assert 0.0 < metrics["shapes/cd_mmd"] < 0.5

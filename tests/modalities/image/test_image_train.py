"""End to end: the shipped shapes_tiny recipe trains, samples, previews and scores through the public API."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_shapes_tiny_trains_and_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lumina_core.config import load_recipe
    from lumina_core.training.api import evaluate, sample, train

    cfg = load_recipe(
        "recipes/image/shapes_tiny.yaml",
        overrides=[
            f"run.output_dir={tmp_path / 'run'}",
            "train.max_steps=300",
            "train.threads=1",  # robust when the machine is shared (2 threads oversubscribe badly)
            "train.ckpt_every=300",
            "train.log_every=100",
            "tasks.0.eval.num_samples=64",
        ],
    )
    run_dir = train(cfg)
    assert (run_dir / "config.yaml").is_file()
    metrics = evaluate(cfg, None)
    for key in ("adherence", "shape_acc", "color_acc", "position_acc", "chance_adherence", "fid"):
        assert f"shapes/{key}" in metrics
    # 300 steps (measured: adherence 0.27 vs chance 0.017, colour 0.94 vs 0.25, position 0.78 vs 0.2) - the
    # full recipe reaches adherence 0.7; these margins leave room for run-to-run spread, not for a broken model
    assert metrics["shapes/adherence"] >= metrics["shapes/chance_adherence"] + 0.15, metrics
    assert metrics["shapes/color_acc"] >= metrics["shapes/chance_color"] + 0.4, metrics
    assert metrics["shapes/position_acc"] >= metrics["shapes/chance_position"] + 0.3, metrics
    paths = sample(cfg, None, ["a red circle on the left"], num=2, out_dir=tmp_path / "out")
    assert any(p.name.endswith(".png") for p in paths)

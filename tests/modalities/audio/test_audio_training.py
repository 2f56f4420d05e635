"""End to end on the shipped audio recipe (slow): a short training run, evaluation with the adherence
checker and FAD, previews, and generation of a clip three times longer than training with scaled RoPE."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

RECIPE = "recipes/audio/tones_tiny.yaml"


@pytest.mark.slow
def test_tones_recipe_trains_evaluates_and_extrapolates(tmp_path, monkeypatch):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    from lumina_core.config import load_recipe
    from lumina_core.sampling import generate
    from lumina_core.training.api import evaluate, load_run, train

    root = str(Path(__file__).resolve().parents[3])
    cfg = load_recipe(
        os.path.join(root, RECIPE),
        overrides=[f"run.output_dir={tmp_path / 'run'}", "train.max_steps=200", "train.ckpt_every=200", "train.threads=1",
                   "tasks.0.data.params.size=256", "tasks.0.data.val_params.size=16", "tasks.0.eval.num_samples=16",
                   "tasks.0.sampling.steps=4"],
    )
    run = train(cfg)
    previews = sorted(p.suffix for p in (run / "previews").iterdir())
    assert ".wav" in previews and ".png" in previews
    metrics = evaluate(cfg, None)
    for key in ("tones/adherence", "tones/adherence_shuffled", "tones/pitch_acc", "tones/fad"):
        assert key in metrics and math.isfinite(metrics[key]), (key, metrics)
    # 200 steps (measured: adherence 0.56 against 0.31 for the same samples paired with shuffled captions;
    # the full recipe reaches 0.81 vs 0.35): the model follows its captions, not just the data's statistics
    assert metrics["tones/adherence"] >= metrics["tones/adherence_shuffled"] + 0.1, metrics

    run = load_run(cfg, None)
    model, conditioners = run.model, run.conditioners
    plugin = run.tasks["tones"].plugin
    three = (1, plugin.num_samples(3.0))  # three times the training clip length
    for scaling in (None, {"name": "ntk", "params": {}}):
        clips = generate(model, plugin, conditioners["tones"], "tones", ["two loud clicks"], shapes=[three],
                         steps=3, solver="euler", rope_scaling=scaling, seed=0)
        assert clips[0].shape == three and torch.isfinite(clips[0]).all()

"""``eval.sweep``: one val split per value of a dataset parameter, checked against the dataset at validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lumina_core.config import load_recipe
from lumina_core.config.schema import RecipeConfig
from lumina_core.config.typed import typed_recipe
from lumina_core.training.task import build_task

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "recognition" / "digits_tiny.yaml"


def task(**eval_cfg):
    cfg = OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "tasks": [
                {
                    "name": "digits",
                    "modality": {
                        "name": "image",
                        "params": {"patch_size": 4, "channels": 1, "image_size": 16},
                    },
                    "data": {
                        "name": "digits_labelled",
                        "params": {"size": 16},
                        "val_params": {"channels": 1},
                    },
                    "objective": {"name": "classification", "params": {"classes": 10}},
                    "eval": eval_cfg,
                }
            ]
        },
    )
    return build_task(typed_recipe(cfg).tasks[0])


def test_no_sweep_is_one_val_split():
    [(suffix, ds)] = list(task().eval_splits())
    assert suffix == "" and ds.split == "val" and ds.sizes == [16]


def test_sweep_builds_one_val_split_per_value():
    splits = list(task(sweep={"size": [8, 24]}).eval_splits())
    assert [s for s, _ in splits] == ["@size=8", "@size=24"]
    assert [ds.sizes for _, ds in splits] == [[8], [24]]
    assert all(ds[0]["sample"].shape[-1] == ds.sizes[0] for _, ds in splits)


def test_bad_sweeps_are_clear_errors():
    with pytest.raises(ValueError, match="one dataset parameter"):
        list(task(sweep={"size": [8], "channels": [1]}).eval_splits())
    with pytest.raises(ValueError, match="non-empty list"):
        list(task(sweep={"size": []}).eval_splits())


def test_validation_checks_the_swept_parameter_against_the_dataset():
    with pytest.raises(ValueError) as err:
        load_recipe(RECIPE, ["~tasks.0.eval.sweep", "tasks.0.eval.sweep={sizee: [16]}"])
    assert "tasks.0.eval.sweep.sizee" in str(err.value) and "did you mean 'size'" in str(err.value)

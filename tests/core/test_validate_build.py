"""`config validate` refuses what building the run would refuse, all at once, without training."""

from __future__ import annotations

import pytest
from fixtures.toy_plugin import seq_task, tiny_recipe
from omegaconf import OmegaConf

from lumina_core.config.buildcheck import LIGHTNING_PRECISIONS, lightning_precisions
from lumina_core.config.validate import validate_recipe


def test_precision_list_matches_lightning():
    assert sorted(LIGHTNING_PRECISIONS) == sorted(lightning_precisions())


def _problems(**changes):
    cfg = OmegaConf.to_container(tiny_recipe("/tmp/unused-run-dir"), resolve=False)
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    return validate_recipe(cfg)


def test_a_valid_recipe_has_no_problems():
    assert _problems() == []


def test_every_refusal_of_building_is_reported_at_once(tmp_path):
    problems = _problems(
        **{
            "run.device": "gpu",
            "train.precision": "fp16",
            "train.ema_decay": 1.0,
            "model.dim": 30,  # not divisible by the 4 heads below
            "model.n_heads": 4,
            "tasks.0.data.params": {"size": 8, "lengths": [16], "conditional": False},  # items carry no class
        }
    )
    text = "\n".join(problems)
    assert "run.device" in text and "'gpu'" in text
    assert "train.precision" in text and "'fp16'" in text
    assert "train.ema_decay" in text
    assert "model:" in text and "divisible" in text
    assert "tasks.0.conditioning.encoder" in text and "'none' conditions" in text
    assert len(problems) == 5, problems


def test_a_dataset_that_cannot_be_built_is_named(tmp_path):
    pytest.importorskip("lumina_modalities.image")
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=False)
    cfg["tasks"] = [
        {**seq_task(), "name": "pictures", "modality": {"name": "image", "params": {"patch_size": 4, "fid": False}},
         "data": {"name": "image_folder", "params": {"root": str(tmp_path / "missing")}, "batch_size": 2},
         "conditioning": {"encoder": {"name": "none"}}},
    ]  # fmt: skip
    problems = validate_recipe(cfg)
    assert any("tasks.0.data" in p and "missing" in p and "train split" in p for p in problems), problems


def test_tokens_wider_than_the_trunk_are_refused(tmp_path):
    pytest.importorskip("lumina_modalities.image")
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=False)
    cfg["tasks"] = [
        {**seq_task(), "name": "pictures",
         "modality": {"name": "image", "params": {"patch_size": 8, "image_size": 32, "fid": False}},  # 192 wide
         "data": {"name": "shapes", "params": {"size": 32, "length": 4, "condition": "none"}, "batch_size": 2},
         "conditioning": {"encoder": {"name": "none"}}},
    ]  # fmt: skip
    problems = validate_recipe(cfg)
    assert any("192 values per token" in p and "32 wide" in p for p in problems), problems

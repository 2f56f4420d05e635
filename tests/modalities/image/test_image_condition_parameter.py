"""The image datasets' ``condition`` parameter: one ``condition_kind`` answer (conditions.py) for all five, items
that carry what it says, and one refusal of a kind a dataset cannot give."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import lumina_modalities.image  # noqa: F401  (registers the datasets)
from lumina_core.data import build_dataset, check_condition, condition_kind_of
from lumina_core.data.shards import pack_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)).save(root / f"p{i}.png")
        (root / f"p{i}.txt").write_text(f"picture {i}")
    shards = pack_folder(root, tmp_path_factory.mktemp("shards"), shard_size=2).shards
    return root, shards


def _params(name, folder):
    root, shards = folder
    return {
        "shapes": {"size": 16, "length": 3},
        "digits": {"size": 8},
        "image_folder": {"root": str(root), "size": 8},
        "image_shards": {"path": str(shards[0].parent), "size": 8},
        "image_stream": {"urls": [str(s) for s in shards], "size": 8},
    }[name]


CAN_GIVE = {
    "shapes": ("text", "class", "none"),
    "digits": ("class", "text", "none"),
    "image_folder": ("text", "none"),
    "image_shards": ("text", "none"),
    "image_stream": ("text", "none"),
}


def _first(dataset):
    return next(iter(dataset)) if not hasattr(dataset, "__len__") else dataset[0]


@pytest.mark.parametrize("name", sorted(CAN_GIVE))
def test_condition_kind_follows_the_parameter_and_the_items(name, folder):
    for kind in CAN_GIVE[name]:
        ds = build_dataset(name, {**_params(name, folder), "condition": kind}, "val")
        assert condition_kind_of(ds) == kind
        cond = _first(ds)["condition"]
        expected = {"text": str, "class": int, "none": type(None)}[kind]
        assert isinstance(cond, expected), (name, kind, cond)


@pytest.mark.parametrize("name", sorted(CAN_GIVE))
def test_a_kind_the_dataset_cannot_give_is_refused(name, folder):
    bad = "class" if "class" not in CAN_GIVE[name] else "labels"
    with pytest.raises(ValueError, match=f"condition must be .*got '{bad}'"):
        build_dataset(name, {**_params(name, folder), "condition": bad}, "val")


def test_check_condition_names_what_was_expected_and_what_came():
    assert check_condition("none", ("text", "none")) == "none"
    with pytest.raises(ValueError) as err:
        check_condition("class", ("text", "none"))
    assert str(err.value) == "condition must be 'text' or 'none'; got 'class'"
    with pytest.raises(ValueError, match="condition must be 'text'; got 'none'"):
        check_condition("none", ("text",))

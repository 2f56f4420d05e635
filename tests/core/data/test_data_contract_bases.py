"""The shipped datasets are written against the contract's base class, and the core keeps one list of
condition kinds."""

from __future__ import annotations

import torch

from lumina_core import data, plugin
from lumina_core.data import LuminaDataset
from lumina_core.registry import DATASETS, load_all_plugins

SHIPPED = {"lumina_core", "lumina_modalities", "lumina_video"}  # the core, the built-in and the video plugins


def test_every_shipped_map_style_dataset_subclasses_lumina_dataset():
    load_all_plugins()
    names = DATASETS.names()
    assert {"shapes", "tones", "melodies", "shapes_lite", "multiview_scenes", "moving_shapes"} <= set(names)
    for name in names:
        cls = DATASETS.get(name)
        if cls.__module__.split(".")[0] not in SHIPPED:
            continue  # a test's own dataset (registered by another test module in this process)
        if issubclass(cls, torch.utils.data.IterableDataset):
            continue  # streams (ShardStream and its subclasses) iterate; they are not map-style
        assert issubclass(cls, LuminaDataset), f"dataset {name!r} ({cls.__module__}) is not a LuminaDataset"
        assert cls.modality, f"dataset {name!r} declares no modality"


def test_one_list_of_condition_kinds():
    assert data.CONDITION_KINDS is plugin.CONDITION_KINDS


def test_trunk_uses_the_shared_mask_helper():
    from lumina_core.model import masks, nextdit

    assert nextdit.all_true is masks.all_true

"""image_stream: the same decoding as image_shards, streamed; a corrupt image skipped and counted."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

import lumina_modalities.image  # noqa: F401  (registers the datasets)
from lumina_core.data import build_dataset
from lumina_core.data.shards import pack_folder
from lumina_core.data.stream import first_items, stream_loader


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, size=(10 + i, 12, 3), dtype=np.uint8)).save(root / f"p{i}.png")
        (root / f"p{i}.txt").write_text(f"picture {i}")
    (root / "p3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return pack_folder(root, tmp_path / "shards", shard_size=3).shards


def test_streamed_items_equal_the_indexed_ones(shards):
    indexed = build_dataset("image_shards", {"path": str(shards[0].parent), "size": 8}, "val")
    val = build_dataset("image_stream", {"urls": [str(s) for s in shards], "size": 8}, "val")
    assert val.condition_kind == "text" and val.modality == "image"
    streamed = list(val)  # the val split: one pass in shard order
    assert len(streamed) == 6 and val.skipped == 1 and "p3" in val.skipped_names[0]
    by_caption = {indexed[i]["condition"]: indexed[i]["sample"] for i in range(len(indexed))}
    for item in streamed:
        assert torch.equal(item["sample"], by_caption[item["condition"]])
    assert [it["condition"] for it in first_items(val, 2)] == ["picture 0", "picture 1"]


def test_training_split_streams_for_ever_shuffled_through_workers(shards):
    train = build_dataset(
        "image_stream", {"urls": str(shards[0].parent / "shard-{000000..000002}.tar"), "size": 8, "seed": 1}, "train"
    )
    batches = list(itertools.islice(iter(stream_loader(train, batch_size=4, num_workers=2)), 6))
    captions = [c for b in batches for c in b["conditions"]]
    assert len(captions) == 24 and set(captions) == {f"picture {i}" for i in range(7) if i != 3}
    assert all(s.shape == (3, 8, 8) for b in batches for s in b["samples"])
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        build_dataset("image_stream", {"urls": str(shards[0]), "channels": 2}, "train")

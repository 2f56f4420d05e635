"""A user's image + caption pairs: folder and shards datasets, corrupt files skipped and counted, buckets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lumina_core.data import build_dataset
from lumina_modalities.image import AspectRatioBucketSampler, ImageFolderDataset, ImageShardsDataset
from lumina_modalities.image.buckets import bucket_sizes, nearest_bucket


def _make_folder(root, n=5, corrupt=("c02",)):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        stem = f"c{i:02d}"
        if stem in corrupt:
            (root / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        else:
            arr = rng.integers(0, 256, size=(24 + 8 * i, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / f"{stem}.png")
        (root / f"{stem}.txt").write_text(f"caption number {i}\n", encoding="utf-8")
    return root


def test_folder_reads_resizes_and_skips_corrupt(tmp_path):
    root = _make_folder(tmp_path / "imgs")
    ds = build_dataset("image_folder", {"root": str(root), "size": 16}, "train")  # skip policy applied
    assert isinstance(ds.dataset, ImageFolderDataset) and len(ds) == 5
    items = [ds[i] for i in range(len(ds))]
    for it in items:
        assert it["sample"].shape == (3, 16, 16)
        assert -1 <= it["sample"].min() and it["sample"].max() <= 1
    assert items[0]["condition"] == "caption number 0"
    # the corrupt c02 is replaced by the next readable item and counted once per read
    assert items[2]["condition"] == "caption number 3"
    assert ds.skipped == 1 and ds.skipped_names[0].endswith("c02.png")
    assert "skipped 1 of" in ds.summary()


def test_folder_pixels_match_a_direct_decode(tmp_path):
    from PIL import Image

    root = tmp_path / "one"
    root.mkdir()
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[:, :, 0] = 255
    arr[:4, :, 2] = 255
    Image.fromarray(arr).save(root / "a.png")
    (root / "a.txt").write_text("half magenta", encoding="utf-8")
    x = ImageFolderDataset(str(root), size=8)[0]["sample"]
    assert torch.allclose(x[0], torch.ones(8, 8))
    assert torch.allclose(x[1], -torch.ones(8, 8))
    assert torch.allclose(x[2, :4], torch.ones(4, 8)) and torch.allclose(x[2, 4:], -torch.ones(4, 8))


def test_folder_val_split_is_disjoint(tmp_path):
    root = _make_folder(tmp_path / "imgs", n=8, corrupt=())
    train = ImageFolderDataset(str(root), split="train", val_fraction=0.25)
    val = ImageFolderDataset(str(root), split="val", val_fraction=0.25)
    assert len(train) == 6 and len(val) == 2
    assert not {p.key for p in train.pairs} & {p.key for p in val.pairs}


def test_shards_packed_from_a_folder(tmp_path):
    from lumina_core.data.shards import pack_folder

    root = _make_folder(tmp_path / "imgs", n=5)
    report = pack_folder(str(root), str(tmp_path / "shards" / "shard-%06d.tar"), shard_size=2)
    assert len(report.shards) == 3
    ds = build_dataset("image_shards", {"path": str(tmp_path / "shards"), "size": 16}, "train")
    assert isinstance(ds.dataset, ImageShardsDataset) and len(ds) == 5
    folder = ImageFolderDataset(str(root), size=16)
    for i in (0, 1, 3, 4):  # identical bytes, identical decoding
        a, b = ds[i], folder[i]
        assert a["condition"] == b["condition"]
        assert torch.equal(a["sample"], b["sample"])
    assert ds[2]["condition"] == "caption number 3" and ds.skipped == 1
    # the streaming reader with the same decoding skips and counts the corrupt sample too
    stream = ds.stream()
    streamed = list(stream)
    assert len(streamed) == 4 and stream.skipped == 1


def test_bucket_sizes_and_sampler():
    buckets = bucket_sizes(32, 8, max_ratio=4)
    assert (32, 32) in buckets and (16, 64) in buckets and (64, 16) in buckets
    assert all(h % 8 == 0 and w % 8 == 0 and h * w <= 32 * 32 for h, w in buckets)
    assert all(max(h / w, w / h) <= 4 for h, w in buckets)
    assert nearest_bucket(100, 400, buckets) == (16, 64)
    sizes = [(32, 32)] * 5 + [(16, 64)] * 3 + [(64, 16)] * 2
    sampler = AspectRatioBucketSampler(sizes, batch_size=2, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2 + 1
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert all(len({sizes[i] for i in b}) == 1 for b in batches)
    sampler.set_epoch(1)
    assert sorted(i for b in sampler for i in b) == list(range(10))
    assert len(AspectRatioBucketSampler(sizes, batch_size=2, drop_last=True)) == 2 + 1 + 1


def test_folder_buckets_follow_aspect_ratio(tmp_path):
    from PIL import Image

    root = tmp_path / "wide"
    root.mkdir()
    Image.fromarray(np.zeros((20, 80, 3), dtype=np.uint8)).save(root / "w.png")
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(root / "s.png")
    for s in ("w", "s"):
        (root / f"{s}.txt").write_text(s, encoding="utf-8")
    ds = ImageFolderDataset(str(root), size=32, buckets=True, multiple=8)
    assert ds.sizes() == [(32, 32), (16, 64)]
    assert ds[1]["sample"].shape == (3, 16, 64)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError)):
        ImageFolderDataset(str(tmp_path / "nothing"))

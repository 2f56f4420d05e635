"""Packing a folder into webdataset shards and streaming it back, skipping corrupt samples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

pytest.importorskip("webdataset")
PIL = pytest.importorskip("PIL.Image")

from lumina_core.data import collate_items  # noqa: E402
from lumina_core.data.robust import CorruptSampleError  # noqa: E402
from lumina_core.data.shards import (  # noqa: E402
    IndexedShards,
    ShardDataset,
    pack_folder,
    resolve_shards,
    sample_caption,
    sample_data,
    sample_label,
    sample_meta,
)

N_GOOD = 7


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(4 + i % 3, 5, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "pairs"
    root.mkdir()
    for i in range(N_GOOD):
        PIL.fromarray(_image(i)).save(root / f"img{i:02d}.png")
        (root / f"img{i:02d}.txt").write_text(f"caption number {i}", encoding="utf-8")
        (root / f"img{i:02d}.json").write_text(json.dumps({"index": i}))
        (root / f"img{i:02d}.cls").write_text(str(i % 3))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (root / "broken.txt").write_text("a corrupt file")
    return root


def decode(sample: dict) -> dict:
    """A real image decode: PIL must parse the PNG bytes."""
    ext, data = sample_data(sample, ["png"])
    try:
        image = np.asarray(PIL.open(io.BytesIO(data)).convert("RGB"))
    except Exception as err:  # PIL raises several types for a bad file
        raise CorruptSampleError(f"unreadable {ext}: {err}", name=sample["__key__"]) from err
    return {
        "sample": torch.from_numpy(image.copy()),
        "condition": sample_caption(sample),
        "meta": {**sample_meta(sample), "label": sample_label(sample), "key": sample["__key__"]},
    }


def _pack(folder, tmp_path, shard_size=3):
    return pack_folder(
        folder, str(tmp_path / "shards" / "shard-%06d.tar"), shard_size=shard_size, extensions="png"
    )


def test_pack_and_read_back(folder, tmp_path):
    report = _pack(folder, tmp_path)
    assert report.num_samples == N_GOOD + 1
    assert [p.name for p in report.shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert all(p.is_file() for p in report.shards)
    assert "packed 8 samples into 3 shard(s)" in str(report)

    ds = ShardDataset(str(tmp_path / "shards" / "shard-{000000..000002}.tar"), decode)
    items = list(ds)
    assert len(items) == N_GOOD
    for item in items:
        i = item["meta"]["index"]
        assert item["meta"]["key"] == f"img{i:02d}"
        assert item["condition"] == f"caption number {i}"
        assert item["meta"]["label"] == i % 3
        assert torch.equal(item["sample"], torch.from_numpy(_image(i)))  # bytes survive exactly
    assert ds.skipped == 1 and ds.seen == N_GOOD + 1
    assert len(ds.skipped_names) == 1 and ds.skipped_names[0].endswith(":broken")
    assert ds.summary().startswith(f"skipped 1 of {N_GOOD + 1} unreadable samples")


@pytest.mark.parametrize("shard_size", [3, 100])  # 3 shards (dealt to workers) and 1 shard (samples strided)
def test_each_sample_once_across_workers(folder, tmp_path, shard_size):
    _pack(folder, tmp_path, shard_size=shard_size)
    ds = ShardDataset(tmp_path / "shards", decode)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_items)
    keys = [m["key"] for batch in loader for m in batch["meta"]]
    assert sorted(keys) == [f"img{i:02d}" for i in range(N_GOOD)]
    assert ds.skipped == 1 and ds.seen == N_GOOD + 1  # shared counters see the workers' skips


def test_shuffling_is_seeded_per_epoch(folder, tmp_path):
    _pack(folder, tmp_path, shard_size=2)
    ds = ShardDataset(
        str(tmp_path / "shards" / "*.tar"), decode, shuffle_shards=True, shuffle_buffer=3, seed=1
    )
    order0 = [it["meta"]["key"] for it in ds]
    again = [it["meta"]["key"] for it in ds]
    ds.set_epoch(1)
    order1 = [it["meta"]["key"] for it in ds]
    assert order0 == again
    assert order0 != order1 and sorted(order0) == sorted(order1)


def test_truncated_shard_is_reported(folder, tmp_path):
    report = _pack(folder, tmp_path, shard_size=4)
    last = report.shards[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])
    ds = ShardDataset([str(p) for p in report.shards], decode)
    items = list(ds)
    assert 4 <= len(items) < N_GOOD
    assert ds.failed_shards == [str(last)]
    assert "could not be read to the end" in ds.summary()
    ds.reset()
    assert ds.failed_shards == [] and "could not be read" not in ds.summary()


def test_missing_caption_and_dotted_names(tmp_path):
    root = tmp_path / "pairs"
    root.mkdir()
    PIL.fromarray(_image(0)).save(root / "photo.v2.png")
    (root / "photo.v2.txt").write_text("dotted")
    PIL.fromarray(_image(1)).save(root / "nocap.png")
    with pytest.raises(ValueError, match="no .txt caption: nocap.png"):
        pack_folder(root, str(tmp_path / "a" / "s-%03d.tar"))
    report = pack_folder(root, str(tmp_path / "b" / "s-%03d.tar"), missing_caption="empty")
    assert report.missing_captions == ["nocap"]
    raws = list(ShardDataset(report.shards, lambda s: s))
    by_key = {r["__key__"]: r for r in raws}
    assert set(by_key) == {"nocap", "photo_v2"}
    assert by_key["nocap"]["txt"] == b"" and sample_caption(by_key["nocap"]) == ""
    assert by_key["photo_v2"]["path"] == b"photo.v2.png"
    assert sample_meta(by_key["nocap"]) == {} and sample_label(by_key["nocap"]) is None


def test_resolve_shards_errors(tmp_path):
    with pytest.raises(ValueError, match="local files"):
        resolve_shards("https://example.com/shard-000000.tar")
    with pytest.raises(ValueError, match="local files"):
        resolve_shards("pipe:curl -s http://x/y.tar")
    with pytest.raises(FileNotFoundError):
        resolve_shards(str(tmp_path / "missing-{000..001}.tar"))
    with pytest.raises(FileNotFoundError, match="no shard files"):
        resolve_shards(str(tmp_path / "*.tar"))


def test_pack_argument_errors(folder, tmp_path):
    with pytest.raises(ValueError, match="shard_size"):
        pack_folder(folder, str(tmp_path / "s-%03d.tar"), shard_size=0)
    with pytest.raises(ValueError, match="dst_pattern"):
        pack_folder(folder, str(tmp_path / "s.tar"))
    report = pack_folder(folder, tmp_path / "as_folder", shard_size=5)  # a folder is fine too
    assert [p.relative_to(tmp_path).as_posix() for p in report.shards] == [
        "as_folder/shard-000000.tar",
        "as_folder/shard-000001.tar",
    ]


def test_sample_helpers_reject_bad_fields():
    with pytest.raises(CorruptSampleError, match="JSON"):
        sample_meta({"__key__": "k", "json": b"{not json"})
    with pytest.raises(CorruptSampleError, match="not an integer"):
        sample_label({"__key__": "k", "cls": b"three"})
    with pytest.raises(CorruptSampleError, match="one data file"):
        sample_data({"__key__": "k", "png": b"", "jpg": b"", "txt": b""})
    with pytest.raises(CorruptSampleError, match="no 'txt'"):
        sample_caption({"__key__": "k"})
    assert sample_data({"__key__": "k", "wav": b"RIFF", "txt": b"x"}) == ("wav", b"RIFF")


def test_indexed_shards_read_back_exact_bytes(folder, tmp_path):
    report = _pack(folder, tmp_path)
    index = IndexedShards(tmp_path / "shards")
    assert len(index) == N_GOOD + 1 and index.urls == [str(p) for p in report.shards]
    assert sorted(index.keys) == sorted(["broken"] + [f"img{i:02d}" for i in range(N_GOOD)])
    streamed = {raw["__key__"]: raw for raw in ShardDataset(report.shards, lambda s: s)}
    for i in reversed(range(len(index))):  # any order: random access
        sample = index.read(i)
        key = index.key(i)
        assert sample["__key__"] == key and sample["__url__"] == index.url(i)
        assert index.name(i) == f"{index.url(i)}:{key}"
        assert set(index.members(i)) == {"png", "txt", "json", "cls", "path"} - (
            {"json", "cls"} if key == "broken" else set()
        )
        assert sample == streamed[key]  # same dict as the streaming reader hands to decode
        original = sample["path"].decode()
        assert sample["png"] == (folder / original).read_bytes()  # exact bytes
    assert index.read(-1) == index.read(len(index) - 1)
    with pytest.raises(IndexError, match="out of range"):
        index.read(len(index))
    only_labelled = IndexedShards(tmp_path / "shards", where=lambda members: "cls" in members)
    assert len(only_labelled) == N_GOOD and "broken" not in only_labelled.keys


def test_indexed_shards_truncated_member_is_a_corrupt_sample(folder, tmp_path):
    report = _pack(folder, tmp_path, shard_size=100)
    shard = report.shards[0]
    index = IndexedShards(shard)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # the shard is damaged after indexing
    keys = index.keys
    first, last = index.read(0), len(index) - 1
    assert first["__key__"] == keys[0]
    with pytest.raises(CorruptSampleError, match=f"{shard}:{keys[last]}.*truncated"):
        index.read(last)
    # indexing the damaged shard keeps what it can find; a member cut short still fails to read
    damaged = IndexedShards(shard)
    assert 0 < len(damaged) < len(index)
    readable = 0
    for i in range(len(damaged)):
        try:
            damaged.read(i)
            readable += 1
        except CorruptSampleError:
            pass
    assert readable >= len(damaged) - 1


def test_indexed_shards_errors(tmp_path):
    not_a_tar = tmp_path / "junk.tar"
    not_a_tar.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(ValueError, match="cannot index shard .*junk.tar"):
        IndexedShards(not_a_tar)
    with pytest.raises(FileNotFoundError):
        IndexedShards(tmp_path / "missing.tar")
    with pytest.raises(ValueError, match="local files"):
        IndexedShards("https://example.com/shard-000000.tar")


def test_indexed_shards_gzipped_shard(folder, tmp_path):
    import gzip

    report = _pack(folder, tmp_path, shard_size=100)
    gz = tmp_path / "shard.tar.gz"
    gz.write_bytes(gzip.compress(report.shards[0].read_bytes()))
    plain, packed = IndexedShards(report.shards[0]), IndexedShards(gz)
    assert packed.keys == plain.keys
    assert all(
        {k: v for k, v in packed.read(i).items() if k != "__url__"}
        == {k: v for k, v in plain.read(i).items() if k != "__url__"}
        for i in range(len(plain))
    )

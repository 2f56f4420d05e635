"""A stream shard that cannot be read to the end is in the skip report (what a run writes to
data_report.json), counted across DataLoader workers, not only in the log (issue 27)."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

pytest.importorskip("webdataset")

from lumina_core.data.pack import PackSample, pack_samples  # noqa: E402
from lumina_core.data.robust import skip_report  # noqa: E402
from lumina_core.data.shards import ShardDataset  # noqa: E402


def decode(sample: dict) -> dict:
    return {"sample": sample["bin"], "condition": None, "meta": {"key": sample["__key__"]}}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_shard_is_listed_in_the_skip_report(tmp_path, workers):
    samples = [PackSample(f"s{i:02d}", {"bin": bytes([i]) * 3000, "txt": b"x"}) for i in range(8)]
    shards = pack_samples(samples, tmp_path / "shards", shard_size=2).shards
    bad = shards[1]
    bad.write_bytes(bad.read_bytes()[:2500])  # the first member survives, the rest is cut off
    ds = ShardDataset([str(s) for s in shards], decode)
    got = list(DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=lambda x: x))
    assert 6 <= len(got) < 8
    report = skip_report(ds)
    assert report["failed_shards"] == 1 and report["failed_shard_names"] == [str(bad)]
    assert report["skipped"] == 0
    assert "1 shard(s) could not be read to the end" in ds.summary()
    list(ds)  # a second pass (in this process) meets the same shard: still one
    assert skip_report(ds)["failed_shards"] == 1
    assert "1 shard(s) could not be read to the end" in ds.summary()

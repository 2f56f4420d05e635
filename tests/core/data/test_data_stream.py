"""Streaming webdataset shards (issue #14): split by worker and rank, resampling, a corrupt sample and a
truncated shard skipped and counted, URLs and pipe: commands, and a resume that equals no resume."""

from __future__ import annotations

import io
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("webdataset")
Image = pytest.importorskip("PIL.Image")

from lumina_core.data.robust import CorruptSampleError  # noqa: E402
from lumina_core.data.shards import (  # noqa: E402
    STREAM_KEY,
    ShardDataset,
    pack_folder,
    resolve_shards,
    sample_caption,
    sample_data,
)
from lumina_core.data.stream import StreamPosition, first_items, merge_states, stream_loader  # noqa: E402

N = 15  # samples packed; "s07" is a corrupt PNG


def decode(sample: dict) -> dict:
    """A real decode: PIL parses the PNG; the caption must be UTF-8."""
    _, data = sample_data(sample, ["png"])
    try:
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    except Exception as err:  # PIL raises several types for a broken file
        raise CorruptSampleError(f"cannot decode: {err}", name=sample["__key__"]) from err
    return {"sample": torch.from_numpy(pixels), "condition": sample_caption(sample), "meta": {"key": sample["__key__"]}}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("stream")
    src = root / "folder"
    src.mkdir()
    for i in range(N):
        if i == 7:
            (src / "s07.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        else:
            Image.fromarray(np.full((4, 4), 10 * i, dtype=np.uint8)).save(src / f"s{i:02d}.png")
        (src / f"s{i:02d}.txt").write_text(f"sample {i}")
    return pack_folder(src, root / "shards", shard_size=4).shards  # 4 shards: 4, 4, 4, 3 samples


def keys(items) -> list[str]:
    return [it["meta"]["key"] for it in items]


def good_keys() -> set[str]:
    return {f"s{i:02d}" for i in range(N) if i != 7}


def test_one_pass_reads_every_readable_sample_once_and_counts_the_corrupt_one(shards):
    ds = ShardDataset(shards, decode, shuffle_shards=True, shuffle_buffer=5, seed=3)
    got = keys(ds)
    assert sorted(got) == sorted(good_keys()) and ds.skipped == 1 and "s07" in ds.skipped_names[0]
    assert got != sorted(got)  # shuffled
    ds.set_epoch(1)
    assert keys(ds) != got and sorted(keys(ds)) == sorted(got)  # another order in another epoch


def test_split_by_worker_and_by_rank(shards, monkeypatch):
    ds = ShardDataset(shards, decode, shuffle_buffer=3)
    batches = list(stream_loader(ds, batch_size=2, num_workers=2))
    got = [k for b in batches for k in keys([{"meta": m} for m in b["meta"]])]
    assert sorted(got) == sorted(good_keys())  # each sample once across the two workers
    assert ds.skipped == 1  # counted in the worker that met it, visible here
    per_rank = []
    for rank in (0, 1):  # torchrun's variables, as when torch.distributed is not initialised yet
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        per_rank.append(keys(ShardDataset(shards, decode)))
    assert not set(per_rank[0]) & set(per_rank[1]) and set(per_rank[0]) | set(per_rank[1]) == good_keys()
    # more readers than shards: every reader reads every shard and keeps every n-th sample
    monkeypatch.setenv("WORLD_SIZE", "5")
    split = []
    for rank in range(5):
        monkeypatch.setenv("RANK", str(rank))
        split.append(keys(ShardDataset(shards, decode)))
    assert sorted(itertools.chain(*split)) == sorted(good_keys())


def test_truncated_shard_is_skipped_and_counted_and_the_stream_goes_on(shards, tmp_path):
    copies = [Path(shutil.copy(s, tmp_path / s.name)) for s in shards]
    size = copies[1].stat().st_size
    with open(copies[1], "r+b") as f:
        f.truncate(int(size * 0.45))  # cuts the second shard inside a sample
    ds = ShardDataset(copies, decode)
    got = keys(ds)
    assert ds.failed_shards == [str(copies[1])]
    assert {f"s{i:02d}" for i in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14)} <= set(got)  # later shards read
    assert not {"s06", "s07"} & set(got)  # lost with the end of the shard
    assert ds.skipped >= 0 and "could not be read to the end" in ds.summary()


def test_urls_and_pipe_commands_stream_like_local_paths(shards):
    local = keys(ShardDataset(shards, decode))
    assert keys(ShardDataset([f"file://{s}" for s in shards], decode)) == local
    if shutil.which("cat"):
        assert keys(ShardDataset([f"pipe:cat {s}" for s in shards], decode)) == local
        broken = ShardDataset([f"pipe:cat {shards[0]}", "pipe:cat /nonexistent/shard.tar"], decode)
        assert keys(broken) == local[:4] and broken.failed_shards == ["pipe:cat /nonexistent/shard.tar"]
    with pytest.raises(ValueError, match="does not open 's3' URLs.*pipe:aws s3 cp"):
        resolve_shards("s3://bucket/shard-000000.tar", remote=True)
    with pytest.raises(ValueError, match="random access needs local files"):
        resolve_shards("pipe:cat x.tar")
    pattern = "pipe:cat " + os.path.join(os.path.dirname(shards[0]), "shard-{000000..000003}.tar")
    assert resolve_shards(pattern, remote=True) == [f"pipe:cat {s}" for s in shards]


def test_resampled_stream_has_epochs_of_the_given_length(shards):
    with pytest.raises(ValueError, match="epoch_length"):
        ShardDataset(shards, decode, resampled=True)
    ds = ShardDataset(shards, decode, resampled=True, epoch_length=10, seed=1)
    first = keys(ds)
    assert len(first) == 10 and set(first) <= good_keys()
    assert keys(ds) == first  # seeded: the same epoch again
    ds.set_epoch(1)
    assert keys(ds) != first
    endless = ShardDataset(shards, decode, resampled=True, epoch_length=6, repeat=True)
    items = list(itertools.islice(iter(endless), 20))
    assert [it["meta"][STREAM_KEY][4] for it in items] == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 2  # epochs


def _run(ds_kwargs, shards, workers, batches, state=None):
    ds = ShardDataset(shards, decode, repeat=True, **ds_kwargs)
    position = StreamPosition()
    position.load_state_dict(state)
    loader = stream_loader(ds, batch_size=3, num_workers=workers, state=state)
    out = []
    for batch in itertools.islice(iter(loader), batches):
        position.update(batch)  # what the training step does with the batch it trains on
        out += [m["key"] for m in batch["meta"]]
    return out, position.state_dict()


@pytest.mark.parametrize(
    "kwargs, workers",
    [
        ({"shuffle_shards": True, "shuffle_buffer": 4, "seed": 5}, 0),
        ({"shuffle_shards": True, "shuffle_buffer": 4, "seed": 5}, 2),
        ({"resampled": True, "epoch_length": 8, "shuffle_buffer": 3, "seed": 2}, 2),
    ],
    ids=["in-order-0-workers", "in-order-2-workers", "resampled-2-workers"],
)
def test_resume_continues_exactly_where_the_run_stopped(shards, kwargs, workers):
    whole, _ = _run(kwargs, shards, workers, 11)  # more than one epoch
    head, state = _run(kwargs, shards, workers, 5)
    assert state["batches"] == 5 and state["workers"] == max(workers, 1)
    tail, _ = _run(kwargs, shards, workers, 6, state=state)
    assert head + tail == whole
    assert len(set(whole)) < len(whole)  # the stream went past an epoch: items came back


def test_resume_with_other_workers_restarts_the_epoch_with_a_warning(shards, caplog):
    kwargs = {"shuffle_buffer": 4}
    _, state = _run(kwargs, shards, 2, 3)
    tail, _ = _run(kwargs, shards, 0, 2, state=state)  # logged in this process (no workers)
    assert "restarts at the beginning of epoch 0" in caplog.text and len(tail) == 6


def test_positions_of_ranks_merge_and_first_items(shards):
    a = {"world": 2, "workers": 1, "positions": {"0": [0, 4, 3]}, "next_worker": 0, "batches": 2}
    b = {"world": 2, "workers": 1, "positions": {"1": [0, 2, 1]}, "next_worker": 0, "batches": 2}
    assert merge_states([a, b])["positions"] == {"0": [0, 4, 3], "1": [0, 2, 1]}
    ds = ShardDataset(shards, decode, repeat=True)
    assert keys(first_items(ds, 3)) == ["s00", "s01", "s02"]
    assert first_items([10, 20, 30], 2) == [10, 20]

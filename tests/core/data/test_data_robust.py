"""Skipping and counting unreadable samples, across DataLoader workers."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lumina_core.data import collate_items, robust
from lumina_core.data.robust import CorruptSampleError, SkipCorrupt, SkipCorruptIterable

BAD = {2, 7}


class Flaky(Dataset):
    """Ten items; items 2 and 7 are 'corrupt' files."""

    def __len__(self):
        return 10

    def item_name(self, i):
        return f"file_{i}.png"

    def __getitem__(self, i):
        if i == 2:
            raise OSError("truncated PNG")
        if i == 7:
            raise CorruptSampleError("NaN coordinates", name="mesh_7.obj")
        return {"sample": torch.full((2,), float(i)), "condition": f"item {i}", "meta": {"i": i}}

    def score(self, samples, items):
        return {"n": float(len(samples))}


def test_skip_corrupt_drops_counts_and_names(caplog, monkeypatch):
    # each unreadable sample is logged once per process: start from none logged, whatever ran before
    monkeypatch.setattr(robust, "_LOGGED", set())
    ds = SkipCorrupt(Flaky(), substitute=False)
    with caplog.at_level(logging.WARNING, logger="lumina.data"):
        batches = list(DataLoader(ds, batch_size=4, collate_fn=collate_items))
    got = [int(s[0]) for b in batches for s in b["samples"]]
    assert got == [i for i in range(10) if i not in BAD]
    assert [m["i"] for b in batches for m in b["meta"]] == got
    assert ds.skipped == 2 and ds.seen == 10
    assert ds.skipped_names == ["file_2.png", "mesh_7.obj"]
    assert ds.summary() == "skipped 2 of 10 unreadable samples (file_2.png, mesh_7.obj)"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "file_2.png" in lines[0] and "truncated PNG" in lines[0]
    assert ds.score([1, 2], None) == {"n": 2.0}  # dataset API forwarded
    ds.reset()
    assert ds.skipped == 0 and ds.seen == 0 and ds.skipped_names == []


def test_skip_corrupt_counts_across_workers():
    ds = SkipCorrupt(Flaky(), substitute=False)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_items)
    got = sorted(int(s[0]) for b in loader for s in b["samples"])
    assert got == [i for i in range(10) if i not in BAD]
    assert ds.skipped == 2 and ds.seen == 10  # counted in the workers, visible here


def test_unlisted_errors_propagate():
    class Buggy(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise TypeError("a bug, not a corrupt file")

    with pytest.raises(TypeError):
        SkipCorrupt(Buggy(), errors=(OSError, CorruptSampleError))[0]


def test_copies_keep_counts():
    ds = SkipCorrupt(Flaky(), substitute=False)
    ds[2]
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        assert other.skipped == 1 and other.seen == 1 and other.skipped_names == ["file_2.png"]
        other[7]
        assert other.skipped == 2
    assert ds.skipped == 1  # copies are detached


def _decode(raw):
    if raw["__key__"].startswith("bad"):
        raise ValueError("cannot decode")
    if raw["__key__"] == "empty":
        return None
    return raw["v"]


def test_iterable_variant():
    raws = [{"__key__": f"k{i}", "v": i} for i in range(5)] + [{"__key__": "bad1"}, {"__key__": "empty"}]
    stream = SkipCorruptIterable(raws, _decode)
    assert list(stream) == [0, 1, 2, 3, 4]
    assert stream.skipped == 2 and stream.seen == 7
    assert stream.skipped_names == ["bad1", "empty"]
    assert list(stream) == [0, 1, 2, 3, 4]  # a second epoch: the same two unreadable samples, not two more
    assert stream.summary().startswith("skipped 2 of 14 unreadable samples")


def test_iterable_all_bad_is_a_bug():
    stream = SkipCorruptIterable([{"__key__": f"bad{i}"} for i in range(10)], _decode)
    with pytest.raises(RuntimeError, match="every sample"):
        list(stream)
    few = SkipCorruptIterable([{"__key__": "bad0"}], _decode)
    assert list(few) == [] and few.skipped == 1  # one bad sample alone is just a bad sample


def test_skip_summary_finds_wrapped_datasets():
    from torch.utils.data import Subset

    from lumina_core.data.robust import skip_summary

    ds = SkipCorrupt(Flaky(), substitute=False)
    sub = Subset(ds, [0, 1, 2])
    assert skip_summary(sub) is None
    [sub[i] for i in range(3)]
    assert skip_summary(sub) == "skipped 1 of 3 unreadable samples (file_2.png)"
    assert skip_summary(Flaky()) is None

"""Streams under torch.distributed (2 gloo processes): each rank reads its own shards, the ranks' positions
are gathered into one state, and a resume from it continues every rank exactly."""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("webdataset")
Image = pytest.importorskip("PIL.Image")

from lumina_core.data.robust import CorruptSampleError  # noqa: E402
from lumina_core.data.shards import ShardDataset, pack_folder, sample_data  # noqa: E402
from lumina_core.data.stream import StreamPosition, gather_state, stream_loader  # noqa: E402


def decode(sample: dict) -> dict:
    _, data = sample_data(sample, ["png"])
    try:
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    except Exception as err:  # PIL raises several types for a broken file
        raise CorruptSampleError(f"cannot decode: {err}", name=sample["__key__"]) from err
    return {"sample": torch.from_numpy(pixels), "condition": None, "meta": {"key": sample["__key__"]}}


def _keys(shards, state, batches):
    ds = ShardDataset(shards, decode, shuffle_shards=True, shuffle_buffer=3, seed=4, repeat=True)
    position = StreamPosition()
    position.load_state_dict(state)
    out = []
    for batch in itertools.islice(iter(stream_loader(ds, batch_size=2, num_workers=0, state=state)), batches):
        position.update(batch)
        out += [m["key"] for m in batch["meta"]]
    return out, position


def _rank(rank: int, init: str, shards: list[str], out: str) -> None:
    import torch.distributed as dist

    os.environ.pop("WORLD_SIZE", None)
    os.environ.pop("RANK", None)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        whole, _ = _keys(shards, None, 9)
        head, position = _keys(shards, None, 4)
        state = gather_state(position)  # a collective: every rank calls it
        tail, _ = _keys(shards, state, 5)
        with open(f"{out}.{rank}", "w") as f:
            json.dump({"whole": whole, "head": head, "tail": tail, "state": state}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(sys.platform != "linux", reason="forks two gloo processes")
def test_two_ranks_split_the_shards_and_resume_from_the_gathered_state(tmp_path):
    src = tmp_path / "folder"
    src.mkdir()
    for i in range(12):
        Image.fromarray(np.full((4, 4), 20 * i, dtype=np.uint8)).save(src / f"r{i:02d}.png")
        (src / f"r{i:02d}.txt").write_text(f"sample {i}")
    shards = [str(p) for p in pack_folder(src, tmp_path / "shards", shard_size=3).shards]  # 4 shards
    ctx = multiprocessing.get_context("fork")
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_rank, args=(r, init, shards, str(tmp_path / "out"))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    results = [json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1)]
    first_epoch = [set(r["whole"][:6]) for r in results]  # 2 shards x 3 samples per rank per epoch
    assert not first_epoch[0] & first_epoch[1] and len(first_epoch[0] | first_epoch[1]) == 12
    for r in results:
        assert r["head"] + r["tail"] == r["whole"]  # each rank continues exactly
        assert sorted(r["state"]["positions"]) == ["0", "1"] and r["state"]["world"] == 2  # both ranks' readers

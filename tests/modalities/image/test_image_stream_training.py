"""Training from streamed webdataset shards (image_stream): the run trains, a corrupt image is skipped and
counted, and a resume continues the stream exactly (2 + 2 steps equal 4 steps, bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lumina_core.config.schema import RecipeConfig
from lumina_core.data.shards import pack_folder
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import train


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    root = tmp / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(root / f"p{i:02d}.png")
        (root / f"p{i:02d}.txt").write_text(f"picture {i % 3}")
    (root / "p05.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return [str(s) for s in pack_folder(root, tmp / "shards", shard_size=4).shards]


def recipe(out, urls, steps):
    data = {"name": "image_stream", "params": {"urls": urls, "size": 8}, "batch_size": 3}
    return OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "s", "output_dir": str(out), "device": "cpu", "seed": 0},
            "model": {"dim": 32, "n_layers": 1, "n_heads": 2},
            "tasks": [{
                "name": "img",
                "modality": {"name": "image", "params": {"patch_size": 4, "channels": 3, "image_size": 8, "fid": False}},
                "data": data,
                "sampling": {"steps": 1, "solver": {"name": "euler"}},
            }],
            "train": {"max_steps": steps, "ckpt_every": 2, "log_every": 1, "lr": 1e-3, "lr_schedule": "constant",
                      "preview_every": 0},
        },
    )  # fmt: skip


def test_a_streamed_run_resumes_exactly(shards, tmp_path):
    straight = train(recipe(tmp_path / "a", shards, 4))
    train(recipe(tmp_path / "b", shards, 2))
    resumed = train(recipe(tmp_path / "b", shards, 4), resume="last")
    a = ckpt_io.load_weights(straight / "checkpoints" / "step_0000004", "model")
    b = ckpt_io.load_weights(resumed / "checkpoints" / "step_0000004", "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    state = ckpt_io.load_state(straight / "checkpoints" / "step_0000004")
    assert state["stream_positions"]["img"]  # where the readers are is saved


def test_the_corrupt_image_is_reported(shards, tmp_path):
    import json

    run = train(recipe(tmp_path / "c", shards, 5))
    report = json.loads((run / "data_report.json").read_text())
    assert report["img"]["skipped"] >= 1 and any("p05" in n for n in report["img"]["names"])

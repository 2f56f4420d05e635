"""A corrupt file in a user's folder is skipped, logged once (not once per epoch), and its count reported on
the console log lines, in TensorBoard and in the run folder's data_report.json."""

from __future__ import annotations

import json
import logging

import numpy as np
from omegaconf import OmegaConf

from lumina_core.config.schema import RecipeConfig
from lumina_core.training.api import train


def _folder(root, n=4, corrupt="c01"):
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        stem = f"c{i:02d}"
        if stem == corrupt:
            (root / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        else:
            Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(root / f"{stem}.png")
        (root / f"{stem}.txt").write_text(f"picture {i}\n")
    return root


def test_corrupt_samples_are_logged_once_and_counted_per_task(tmp_path, caplog, capsys):
    root = _folder(tmp_path / "imgs")
    cfg = OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "skips", "output_dir": str(tmp_path / "run"), "device": "cpu"},
            "model": {"dim": 32, "n_layers": 1, "n_heads": 2, "multiple_of": 32},
            "tasks": [
                {
                    "name": "pictures",
                    "modality": {"name": "image", "params": {"patch_size": 2, "image_size": 8, "fid": False}},
                    "data": {"name": "image_folder", "params": {"root": str(root), "size": 8, "condition": "none"},
                             "batch_size": 2},
                    "sampling": {"steps": 1, "solver": {"name": "euler"}},
                }
            ],
            "train": {"max_steps": 6, "log_every": 2, "ckpt_every": 6},  # 6 steps of 2: 3 passes over 4 files
        },
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="lumina.data"):
        run_dir = train(cfg)
    logged = [r for r in caplog.records if "c01.png" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["pictures"]["skipped"] == 1 and report["pictures"]["names"][0].endswith("c01.png")
    out = capsys.readouterr().out
    assert "skipped pictures: 1 unreadable" in out  # on the periodic log lines
    assert "task pictures: skipped 1 unreadable sample(s)" in out  # and at the end

"""audio_stream: the same decoding as audio_shards (decode_audio_sample), streamed; a corrupt clip counted."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import lumina_modalities.audio  # noqa: F401  (registers the datasets)
from lumina_core.data import build_dataset
from lumina_core.data.shards import pack_folder

SR = 8000


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    t = np.arange(SR // 4) / SR
    for i in range(4):
        sf.write(root / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), SR)
        (root / f"c{i}.txt").write_text(f"tone {i}")
    (root / "c2.wav").write_bytes(b"RIFF not a wave")
    return pack_folder(root, tmp_path / "shards", shard_size=2).shards


def test_streamed_clips_equal_the_indexed_ones(shards):
    params = {"sample_rate": SR, "max_seconds": 1.0}
    indexed = build_dataset("audio_shards", {"path": str(shards[0].parent), **params}, "val")
    stream = build_dataset("audio_stream", {"urls": [f"file://{s}" for s in shards], **params}, "val")
    streamed = list(stream)
    assert [it["condition"] for it in streamed] == ["tone 0", "tone 1", "tone 3"]
    assert stream.skipped == 1 and "c2" in stream.skipped_names[0]
    by_caption = {indexed[i]["condition"]: indexed[i]["sample"] for i in range(len(indexed))}
    for item in streamed:
        torch.testing.assert_close(item["sample"], by_caption[item["condition"]])
    assert stream.condition_kind == "text"

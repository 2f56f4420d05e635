"""The audio plugin's evaluation reports the within-condition spread beside FAD: real clips vary as the data
does (ratio 1), one clip per prompt scores 0."""

from __future__ import annotations

import pytest

from lumina_modalities.audio import fad
from lumina_modalities.audio.plugin import AudioPlugin
from lumina_modalities.audio.tones import ToneDataset


def test_real_clips_spread_like_the_data_and_one_clip_per_prompt_does_not(tmp_path, monkeypatch, capsys):
    # a real feature extractor, trained for a few steps only (the default trains for a minute on first use)
    monkeypatch.setitem(fad._EXTRACTORS, (), fad.FeatureExtractor(train_items=16, steps=2, cache_dir=tmp_path))
    # noise bursts and clicks differ between clips of one caption; a pure tone of one caption does not
    data = ToneDataset(size=48, split="val", kinds=("noise", "clicks"))
    items = [data[i] for i in range(48)]
    plugin = AudioPlugin()
    real = plugin.evaluate([it["sample"] for it in items], items, data)
    assert real["spread_ratio"] == pytest.approx(1.0) and real["spread"] > 0
    first = {}
    collapsed = [first.setdefault(it["condition"], it["sample"]) for it in items]
    scores = plugin.evaluate(collapsed, items, data)
    assert scores["spread"] == 0.0 and scores["spread_ratio"] == 0.0

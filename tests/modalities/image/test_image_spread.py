"""The image plugin's evaluation reports the within-condition spread beside FID: real images vary as the data
does (ratio 1), a model that draws one picture per caption scores 0."""

from __future__ import annotations

import pytest
import torch

from lumina_modalities.image import fid
from lumina_modalities.image.plugin import ImagePlugin
from lumina_modalities.image.shapes import ShapesDataset


@pytest.fixture
def untrained_feature_net(monkeypatch):
    """The feature network's architecture with fixed random weights (training it takes a minute; the spread
    needs a fixed embedding, not a trained one)."""
    torch.manual_seed(0)
    monkeypatch.setitem(fid._CACHE, fid.FEATURE_NET_VERSION, fid.ShapesFeatureNet().eval().requires_grad_(False))


def test_real_samples_spread_like_the_data_and_collapsed_ones_do_not(untrained_feature_net):
    data = ShapesDataset(length=48, split="val", sizes=True, shapes=["circle", "square"], colors=["red"])
    items = [data[i] for i in range(48)]
    plugin = ImagePlugin()
    real = plugin.evaluate([it["sample"] for it in items], items, data)
    assert real["spread_ratio"] == pytest.approx(1.0) and real["spread"] > 0
    first = {}
    collapsed = [first.setdefault(it["condition"], it["sample"]) for it in items]  # one picture per caption
    scores = plugin.evaluate(collapsed, items, data)
    assert scores["spread"] == 0.0 and scores["spread_ratio"] == 0.0 and scores["spread_real"] == real["spread_real"]

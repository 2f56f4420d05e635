"""benchmarks/recognition.py, piece by piece (the full run takes minutes): both runners classify images of
every evaluation size, have similar parameter counts, and the table reports what each model keeps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")  # the peer (the `recognition` extra)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import recognition as bench  # noqa: E402


def args(**kw) -> argparse.Namespace:
    base = dict(patch=4, train_size=32, dim=32, depth=2, heads=2, timm_mlp_ratio=6.0, label_smoothing=0.1)
    return argparse.Namespace(**{**base, **kw})


def test_runners_classify_every_size_with_similar_parameter_counts():
    a = args()
    ours, vit = bench.Ours(10, 1, a), bench.timm_vit(10, 1, a)
    for size in (16, 24, 48):
        x = torch.randn(3, 1, size, size)
        for scaling in bench.rope_variants(a.train_size):
            ours.rope_scaling = scaling[1](size)
            assert ours(x).shape == (3, 10)
        assert vit(x).shape == (3, 10)  # timm resamples its position embeddings to the new grid
    ratio = bench.n_params(ours.model) / bench.n_params(vit)
    assert 0.8 < ratio < 1.5


def test_rope_variants_cover_the_registered_scalings():
    labels = [label for label, _ in bench.rope_variants(32)]
    for kind in ("none", "pi", "ntk", "freq_aware"):
        assert kind in labels
    assert any("proportional" in label for label in labels)
    explicit = dict(bench.rope_variants(32))["pi, s = size/train both ways"](16)
    assert explicit.scale == pytest.approx(0.5)


def test_table_reports_mean_unseen_and_kept_fraction():
    result = {"classes": 4, "rows": {"m": {"16": 0.5, "32": 1.0, "64": 0.7}}}
    text = bench.table("toy", result, [16, 32, 64], 32)
    assert "| m | 0.500 | **1.000** | 0.700 | 0.600 | 0.60x |" in text
    assert "chance 0.25" in text

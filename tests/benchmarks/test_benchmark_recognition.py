"""benchmarks/recognition.py, piece by piece (the full run takes an hour): every runner classifies images of
every evaluation size with similar parameter counts; the learning rate is chosen on the tuning split; the
headline compares ours with the best peer row at each size."""

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
    for runner in bench.RUNNERS:
        model = bench.build(runner, 10, 1, a)
        model.eval()
        for size in (16, 24, 48):
            x = torch.randn(3, 1, size, size)
            if isinstance(model, bench.Ours):
                for _, make in bench.rope_variants(a.train_size):
                    model.rope_scaling = make(size)
                    assert model(x).shape == (3, 10)
            assert model(x).shape == (3, 10)  # timm resamples its position embeddings to the new grid
            assert bench.resized(model, 32)(x).shape == (3, 10)
        params = bench.n_params(model.model if isinstance(model, bench.Ours) else model)
        assert 0.6 < params / bench.n_params(bench.timm_vit(10, 1, a, pool="avg")) < 1.5
    # ours trains under the shipped scaling and evaluates under whatever is set
    ours = bench.build("ours", 10, 1, a)
    assert ours.train().rope_scaling == bench.shipped_scaling() and ours.eval().rope_scaling is None
    assert bench.build("ours, 32 px only", 10, 1, a).train().rope_scaling is None
    assert bench.shipped_scaling().kind == "pi" and bench.shipped_scaling().shrink


def test_rope_variants_cover_the_registered_scalings():
    labels = [label for label, _ in bench.rope_variants(32)]
    for kind in ("none", "pi", "ntk", "freq_aware", "freq_aware_paper", "time_aware", "pi, shrink"):
        assert kind in labels
    assert any("proportional" in label for label in labels)


def record(runner, lr, seed, tune, val, sweep=True, resized=None):
    rows = {bench.PRIMARY.get(runner, ""): val}
    if resized is not None:
        rows["resized to 32 px"] = resized
    return {"data": "toy", "runner": runner, "lr": lr, "seed": seed, "sweep": sweep, "classes": 4,
            "params": 1, "train_s": 1, "tune": {bench.PRIMARY.get(runner, ""): tune}, "val": rows}  # fmt: skip


def test_the_learning_rate_is_chosen_on_the_tuning_split_and_the_peer_is_the_best_row_per_size():
    sizes = ["16", "32", "64"]
    acc = lambda *v: dict(zip(sizes, v, strict=True))  # noqa: E731
    log = [
        # the peer: lr 4e-3 wins on the tuning split although lr 2e-3 scores higher on the test split
        record("timm ViT, mean-pooled", 2e-3, 0, acc(0.1, 0.2, 0.1), acc(0.9, 0.9, 0.9), resized=acc(0, 0, 0)),
        record("timm ViT, mean-pooled", 4e-3, 0, acc(0.5, 0.6, 0.5), acc(0.2, 0.8, 0.3), resized=acc(0.7, 0.8, 0.6)),
        record("timm ViT, mean-pooled", 4e-3, 1, acc(0, 0, 0), acc(0.4, 0.6, 0.1), False, resized=acc(0.5, 0.6, 0.8)),
        record("ours", 2e-3, 0, acc(0.9, 0.9, 0.9), acc(0.8, 0.9, 0.9), resized=acc(0.9, 0.9, 0.6)),
        record("ours", 2e-3, 1, acc(0, 0, 0), acc(0.6, 0.9, 0.7), False, resized=acc(0.7, 0.9, 0.8)),
    ]  # fmt: skip
    result = bench.collect(log)["toy"]
    assert result["lr"] == {"timm ViT, mean-pooled": 4e-3, "ours": 2e-3}
    rows = bench.mean_rows(result)
    assert rows["timm ViT, mean-pooled"][16] == pytest.approx((0.3, 0.1))
    # ours as lumina predict reads: resized below 32 px, as it is from 32 px on
    assert rows[f"ours, {bench.PREDICT_ROW}"][16] == pytest.approx((0.8, 0.1))
    assert rows[f"ours, {bench.PREDICT_ROW}"][64] == pytest.approx((0.8, 0.1))
    best = bench.strongest_peer(rows)
    assert best[16][0] == "timm ViT, mean-pooled, resized to 32 px" and best[16][1] == pytest.approx(
        (0.6, 0.1)
    )
    assert best[32][0] == "timm ViT, mean-pooled" and best[32][1][0] == pytest.approx(0.7)
    text = bench.headline("toy", result, [16, 32, 64])
    assert "| strongest peer | 0.600 ± 0.100 | 0.700 ± 0.100 | 0.700 ± 0.100 |" in text
    assert "| ours, read at its size (`lumina eval`) | 0.700 ± 0.100 |" in text
    assert "| timm ViT, mean-pooled | 0.004 | 0.300 ± 0.100 |" in bench.table("toy", result, [16, 32, 64], 32)

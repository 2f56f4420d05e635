"""moving_shapes declares ``score_is_mean``: a set's score equals the mean of each clip's, on real clips and
failures alike, so ``lumina eval`` grades each clip once."""

from __future__ import annotations

import pytest
import torch

from lumina_core.data.checkers import mean_verdict, score_with_verdicts
from lumina_core.registry import DATASETS


def test_set_score_is_the_mean_of_the_clips():
    ds = DATASETS.build({"name": "moving_shapes", "params": {"num": 12, "seed": 5}})
    assert ds.score_is_mean
    items = [ds[i] for i in range(12)]
    g = torch.Generator().manual_seed(0)
    samples = [
        [it["sample"], it["sample"].flip(0), torch.rand(it["sample"].shape, generator=g) * 2 - 1][i % 3]
        for i, it in enumerate(items)
    ]  # real, played backwards (wrong direction), noise
    whole = ds.score(samples, items)
    verdicts = [ds.score([x], [it]) for x, it in zip(samples, items, strict=True)]
    assert list(mean_verdict(verdicts)) == list(whole)
    assert mean_verdict(verdicts) == pytest.approx(whole, rel=1e-12)
    assert 0 < whole["adherence"] < 1
    assert score_with_verdicts(ds, samples, items) == (mean_verdict(verdicts), verdicts)

"""The image checkers that declare ``score_is_mean`` (``shapes``, ``digits``) keep the promise ``lumina eval``
relies on: a set's score equals the mean of each sample's verdict, on real items and on failures alike."""

from __future__ import annotations

import pytest
import torch

from lumina_core.data import build_dataset
from lumina_core.data.checkers import mean_verdict, score_with_verdicts


def _mixed(items, seed=0):
    """Half the real samples, half failures (noise, a blank image, another item's sample)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, it in enumerate(items):
        x = it["sample"]
        if i % 4 == 1:
            x = torch.rand(x.shape, generator=g) * 2 - 1
        elif i % 4 == 2:
            x = torch.full_like(x, 1.0)
        elif i % 4 == 3:
            x = items[(i + 1) % len(items)]["sample"]
        out.append(x)
    return out


@pytest.mark.parametrize(
    "name, params",
    [
        ("shapes", {"size": 24, "length": 12}),
        ("shapes", {"size": 24, "length": 12, "sizes": True}),
        ("digits", {"size": 8}),
    ],
)
def test_set_score_is_the_mean_of_the_verdicts(name, params):
    ds = build_dataset(name, params, "val")
    assert ds.score_is_mean
    items = [ds[i] for i in range(12)]
    samples = _mixed(items)
    whole = ds.score(samples, items)
    verdicts = [ds.score([x], [it]) for x, it in zip(samples, items, strict=True)]
    mean = mean_verdict(verdicts)
    assert list(mean) == list(whole)
    assert mean == pytest.approx(whole, rel=1e-12, abs=1e-15)
    assert 0 < whole["adherence" if name == "shapes" else "digit_acc"] < 1  # real hits and real misses
    # the path lumina eval takes gives the same scores, each sample graded once
    scores, again = score_with_verdicts(ds, samples, items)
    assert scores == pytest.approx(whole, rel=1e-12, abs=1e-15) and again == verdicts

"""tones: ``score_with_verdicts`` gives what ``score`` gives on the set and, per clip, what ``score`` gives that
clip alone, from one grading (``lumina eval`` writes those verdicts without grading again)."""

from __future__ import annotations

import pytest
import torch

from lumina_core.data import build_dataset


def test_tones_verdicts_are_the_clips_scored_alone():
    ds = build_dataset("tones", {"size": 12, "sample_rate": 8000}, "val")
    items = [ds[i] for i in range(8)]
    g = torch.Generator().manual_seed(0)
    # real clips, silence, noise and a neighbour's clip: hits, misses and attributes that do not apply
    samples = [
        [it["sample"], torch.zeros_like(it["sample"]), 0.05 * torch.randn(it["sample"].shape, generator=g),
         items[(i + 3) % len(items)]["sample"]][i % 4]
        for i, it in enumerate(items)
    ]  # fmt: skip
    scores, verdicts = ds.score_with_verdicts(samples, items)
    assert scores == ds.score(samples, items) and "adherence_shuffled" in scores
    assert verdicts == [ds.score([x], [it]) for x, it in zip(samples, items, strict=True)]
    assert 0 < scores["adherence"] < 1
    # the set's attribute accuracies count only the clips an attribute applies to: no mean of the verdicts
    pitched = [v["pitch_acc"] for v in verdicts if "pitch_acc" in v]
    assert scores["pitch_acc"] == pytest.approx(sum(pitched) / len(pitched))
    with pytest.raises(ValueError, match="as many samples as items"):
        ds.score_with_verdicts(samples[:2], items[:3])

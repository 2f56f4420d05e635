"""melodies: ``score_with_verdicts`` measures each clip once and gives the set's scores (with the
shuffled-caption chance level) and, per clip, what ``score`` gives that clip alone."""

from __future__ import annotations

import pytest
import torch

from lumina_modalities.music.melodies import MelodyDataset


def test_melodies_verdicts_are_the_clips_scored_alone(monkeypatch):
    ds = MelodyDataset(size=6, clip_seconds=2.0, split="val")
    items = [ds[i] for i in range(4)]
    samples = [
        items[0]["sample"],
        items[2]["sample"],
        torch.zeros_like(items[2]["sample"]),
        items[3]["sample"],
    ]
    measured = []
    original = MelodyDataset.measure

    def counting(self, sample):
        measured.append(1)
        return original(self, sample)

    monkeypatch.setattr(MelodyDataset, "measure", counting)
    scores, verdicts = ds.score_with_verdicts(samples, items)
    assert len(measured) == 4  # one measurement per clip serves its own caption and the chance level
    assert scores == ds.score(samples, items) and "adherence_shuffled" in scores
    assert verdicts == [ds.score([x], [it]) for x, it in zip(samples, items, strict=True)]
    assert all(set(v) == {"key_acc", "mode_acc", "tempo_acc", "density_acc", "adherence"} for v in verdicts)
    with pytest.raises(ValueError, match="as many samples as items"):
        ds.score_with_verdicts([], [])

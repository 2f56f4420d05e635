"""``lumina eval`` on the multi-view checker grades (renders the ground truth of) each sample once - it did
twice: the set's score, then each sample's verdict - through the real plugin's ``evaluate`` (given views
included), with the scores and verdicts the checker gives when called directly."""

from __future__ import annotations

import pytest
import torch

import lumina_modalities.multiview.datasets as mv_datasets
from lumina_core.data import build_dataset
from lumina_core.registry import MODALITIES
from lumina_core.training.verdicts import VerdictRecorder


@pytest.mark.parametrize("given_views", [0, 1])
def test_each_sample_is_rendered_once(monkeypatch, given_views):
    ds = build_dataset("multiview_scenes", {"views": 3, "size": 16, "length": 6}, "val")
    plugin = MODALITIES.build(
        {"name": "multiview", "params": {"views": 3, "size": 16, "given_views": given_views}}
    )
    items = [ds[i] for i in range(4)]
    g = torch.Generator().manual_seed(0)
    samples = [it["sample"].clone() for it in items]
    samples[1][:, :3] = torch.rand(samples[1][:, :3].shape, generator=g) * 2 - 1  # a failed sample
    samples[3][:, :3] = items[0]["sample"][:, :3]  # another scene's views
    expected = plugin.evaluate(samples, items, ds)
    alone = [ds.score([x], [it], **({"given_views": given_views} if given_views else {}))
             for x, it in zip(samples, items, strict=True)]  # fmt: skip

    graded = []  # score_views: one sample's views against renders of its scene (the costly part)
    original = mv_datasets.score_views

    def counting(*args, **kwargs):
        graded.append(kwargs.get("given"))
        return original(*args, **kwargs)

    monkeypatch.setattr(mv_datasets, "score_views", counting)
    recorder = VerdictRecorder(ds, samples, items)
    scores = plugin.evaluate(samples, items, recorder.dataset)
    assert graded == [given_views] * len(samples)  # each sample graded (rendered) once, its given views known
    assert list(scores) == list(expected)
    assert scores == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True)
    assert recorder.verdicts == alone  # each verdict as the checker gives it, given views left out of it too
    assert 0 < scores["adherence"] < 1

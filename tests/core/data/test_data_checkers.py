"""lumina_core.data.checkers: the mean of verdicts, one grading for scores and verdicts, the caption-chance
checker."""

from __future__ import annotations

import math

import pytest

from lumina_core.data import Checker, LuminaDataset, Scores
from lumina_core.data.checkers import mean_verdict, score_against_captions, score_with_verdicts


def test_mean_verdict_leaves_nan_out_and_keeps_constants_exact():
    verdicts = [
        {"acc": 1.0, "chance": 0.1, "iou": float("nan")},
        {"acc": 0.0, "chance": 0.1, "iou": 0.5},
        {"acc": 1.0, "chance": 0.1, "iou": 0.25},
    ]
    assert (0.1 + 0.1 + 0.1) / 3 != 0.1  # so a constant is kept, not averaged
    assert mean_verdict(verdicts) == {"acc": 2 / 3, "chance": 0.1, "iou": 0.375}
    assert math.isnan(mean_verdict([{"iou": float("nan")}])["iou"])
    with pytest.raises(ValueError, match="no verdicts"):
        mean_verdict([])


class Parity:
    """Grades integers: ``even`` is right when the sample's parity is the item's; counts what it grades."""

    def __init__(self, mean: bool) -> None:
        self.score_is_mean, self.graded = mean, []

    def score(self, samples, items, offset=0):
        self.graded.append(len(samples))
        hits = [(s + offset) % 2 == it["meta"]["parity"] for s, it in zip(samples, items, strict=True)]
        return {"even": sum(hits) / len(hits), "chance": 0.5}


ITEMS = [{"meta": {"parity": p}} for p in (0, 1, 0, 0)]


@pytest.mark.parametrize("mean", [True, False])
def test_score_with_verdicts_grades_each_sample_once_when_the_checker_is_a_mean(mean):
    checker = Parity(mean)
    scores, verdicts = score_with_verdicts(checker, [2, 3, 5, 4], ITEMS, offset=0)
    assert scores == {"even": 0.75, "chance": 0.5}
    assert verdicts == [{"even": 1.0, "chance": 0.5}, {"even": 1.0, "chance": 0.5}, {"even": 0.0, "chance": 0.5},
                        {"even": 1.0, "chance": 0.5}]  # fmt: skip
    assert checker.graded == ([1, 1, 1, 1] if mean else [4, 1, 1, 1, 1])
    _, shifted = score_with_verdicts(checker, [2], ITEMS[:1], offset=1)  # keywords reach every call
    assert shifted == [{"even": 0.0, "chance": 0.5}]
    with pytest.raises(ValueError, match="one sample per item"):
        score_with_verdicts(checker, [1, 2], ITEMS)


def test_a_joint_checker_must_give_one_verdict_per_sample():
    class Short:
        def score_with_verdicts(self, samples, items):
            return {"x": 1.0}, [{"x": 1.0}]

    with pytest.raises(ValueError, match="gave 1 verdicts for 2 samples"):
        score_with_verdicts(Short(), [0, 1], ITEMS[:2])


def _aggregate(checks):
    return {"acc": sum(c["ok"] for c in checks) / len(checks)}


def test_score_against_captions_chance_is_the_next_items_truth():
    checked = []

    def check(sample, truth):
        checked.append((sample, truth["want"]))
        return {"ok": sample == truth["want"]}

    truths = [{"want": w} for w in ("a", "b", "c")]
    scores, verdicts = score_against_captions(["a", "b", "x"], truths, check, _aggregate)
    assert scores == {"acc": 2 / 3, "acc_shuffled": 0.0}
    assert verdicts == [{"acc": 1.0}, {"acc": 1.0}, {"acc": 0.0}]
    # each sample checked once against its own truth and once against the next item's
    assert checked == [("a", "a"), ("b", "b"), ("x", "c"), ("a", "b"), ("b", "c"), ("x", "a")]
    # a sample that matches the next caption counts in the chance level, not in the score
    assert score_against_captions(["b", "c", "a"], truths, check, _aggregate)[0] == {
        "acc": 0.0,
        "acc_shuffled": 1.0,
    }
    # one sample alone: no other caption, no chance level; its verdict is its score
    assert score_against_captions(["a"], truths[:1], check, _aggregate) == ({"acc": 1.0}, [{"acc": 1.0}])
    with pytest.raises(ValueError, match="as many samples as items"):
        score_against_captions([], [], check, _aggregate)


def test_score_against_captions_reports_a_constant_chance_key_once():
    """A plugin whose aggregate also returns its class-count chance level gets no ``chance_shuffled``."""

    def with_chance(checks):
        return {**_aggregate(checks), "chance": 0.25}

    truths = [{"want": w} for w in ("a", "b")]
    scores, verdicts = score_against_captions(
        ["a", "x"], truths, lambda s, t: {"ok": s == t["want"]}, with_chance
    )
    assert scores == {"acc": 0.5, "chance": 0.25, "acc_shuffled": 0.0}
    assert verdicts == [{"acc": 1.0, "chance": 0.25}, {"acc": 0.0, "chance": 0.25}]


def test_scores_are_a_mapping_of_floats_that_json_writes_with_the_checker_s_keys():
    import json

    scores = Scores({"adherence": 1, "chance": 0.25})
    assert scores == {"adherence": 1.0, "chance": 0.25} and isinstance(scores["adherence"], float)
    assert scores.chance == 0.25 and Scores({"x": 0.5}).chance is None
    assert json.loads(json.dumps(scores)) == {"adherence": 1.0, "chance": 0.25}
    # a plugin's evaluate adds its own metrics next to the checker's (the image plugin's FID-style distance)
    scores["fid"] = 3
    scores.update(spread=1)
    assert scores == {"adherence": 1.0, "chance": 0.25, "fid": 3.0, "spread": 1.0}
    assert all(isinstance(v, float) for v in scores.values())


class _Hits(Checker, LuminaDataset):
    """Two items; a sample is right when it equals its item's number."""

    modality = "_checker_test"
    score_is_mean = True

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {"sample": i, "condition": None, "meta": {"want": i}}

    def score(self, samples, items):
        return {
            "hit": sum(s == it["meta"]["want"] for s, it in zip(samples, items, strict=True)) / len(items)
        }


def test_a_checker_grades_through_the_contract_and_returns_scores():
    ds = _Hits()
    items = [ds[0], ds[1]]
    scores, verdicts = ds.score_with_verdicts([0, 5], items)
    assert isinstance(scores, Scores) and all(isinstance(v, Scores) for v in verdicts)
    assert (scores, verdicts) == ({"hit": 0.5}, [{"hit": 1.0}, {"hit": 0.0}])
    assert score_with_verdicts(ds, [0, 5], items) == (scores, verdicts)


def test_registration_refuses_a_dataset_with_a_score_that_is_not_a_declared_checker():
    from lumina_core.registry import DATASETS, NonConformingError

    class DuckScored(LuminaDataset):
        modality = "_checker_test"

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"sample": 0, "condition": None, "meta": {}}

        def score(self, samples, items):
            return {"hit": 1.0}

    with pytest.raises(
        NonConformingError, match=r"defines score but does not subclass lumina_core\.data\.Checker"
    ):
        DATASETS.register("_duck_scored")(DuckScored)
    assert "_duck_scored" not in DATASETS.names()
    DATASETS.register("_declared_checker")(_Hits)
    DATASETS.unregister("_declared_checker")

    class Unfinished(Checker, LuminaDataset):  # a checker must implement score
        modality = "_checker_test"

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {}

    with pytest.raises(NonConformingError, match="does not implement score"):
        DATASETS.register("_unfinished_checker")(Unfinished)

"""``lumina eval`` scores each generated sample once: checkers that count their calls, through the real
``evaluate`` path (a trained toy run, ``plugin.evaluate``, the scored-samples manifest).

Three kinds of checker, as the dataset contract allows:

* ``score_is_mean``: the set's score is the per-sample mean, so evaluate grades each sample alone, once, and
  the aggregate is the mean of those verdicts;
* ``score_with_verdicts``: one pass gives the aggregate and each sample's verdict (a checker whose aggregate
  is not a mean, such as a chance level from other items' captions);
* neither: the aggregate call on the set is kept, and each sample is graded alone for its verdict.
"""

from __future__ import annotations

import json
import math

import pytest
from fixtures.toy_plugin import BumpDataset, seq_task, tiny_recipe

from lumina_core.data.checkers import mean_verdict
from lumina_core.registry import DATASETS
from lumina_core.training.api import evaluate, train

#: (dataset name, method, samples in the call) of every checker call
CALLS: list[tuple[str, str, int]] = []


@DATASETS.register("_test_counted_mean", override=True)
class CountedMeanBumps(BumpDataset):
    """The toy checker (class accuracy and template error: both per-sample means), declared a mean."""

    score_is_mean = True

    def score(self, samples, items):
        CALLS.append(("_test_counted_mean", "score", len(samples)))
        return super().score(samples, items)


@DATASETS.register("_test_counted_set", override=True)
class CountedSetBumps(BumpDataset):
    """Adds a set-level number (the spread of the peaks' positions): not a mean of per-sample scores."""

    def score(self, samples, items):
        CALLS.append(("_test_counted_set", "score", len(samples)))
        out = super().score(samples, items)
        peaks = [float(s[0].argmax()) / s.shape[1] for s in samples]
        out["peak_spread"] = max(peaks) - min(peaks)
        return out


@DATASETS.register("_test_counted_joint", override=True)
class CountedJointBumps(BumpDataset):
    """Grades each sample once and reports the set-level spread beside the means, in one pass."""

    def score(self, samples, items):
        return self.score_with_verdicts(samples, items)[0]

    def score_with_verdicts(self, samples, items):
        CALLS.append(("_test_counted_joint", "score_with_verdicts", len(samples)))
        verdicts = [BumpDataset.score(self, [s], [it]) for s, it in zip(samples, items, strict=True)]
        out = mean_verdict(verdicts)
        peaks = [float(s[0].argmax()) / s.shape[1] for s in samples]
        out["peak_spread"] = max(peaks) - min(peaks)
        return out, verdicts


NAMES = ("_test_counted_mean", "_test_counted_set", "_test_counted_joint")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tasks = []
    for name in NAMES:
        task = seq_task(name.removeprefix("_test_counted_"))
        task["data"]["name"] = name
        task["eval"] = {"num_samples": 5, "batch_size": 5}
        tasks.append(task)
    cfg = tiny_recipe(out, tasks, max_steps=1, ckpt_every=1)
    train(cfg)
    CALLS.clear()
    metrics = evaluate(cfg, None)
    return out, metrics, list(CALLS)


def _verdicts(out, task):
    manifest = json.loads((out / "eval" / task / "manifest.json").read_text())["files"]
    assert len(manifest) == 5 and all(e["file"].endswith(".csv") for e in manifest)
    return [e["verdict"] for e in manifest]


def test_a_mean_checker_grades_each_sample_once_and_averages_the_verdicts(evaluated):
    out, metrics, calls = evaluated
    assert [c for c in calls if c[0] == "_test_counted_mean"] == [("_test_counted_mean", "score", 1)] * 5
    verdicts = _verdicts(out, "mean")
    assert all(set(v) == {"class_acc", "template_mse"} for v in verdicts)
    assert all(v["class_acc"] in (0.0, 1.0) for v in verdicts)
    for key in ("class_acc", "template_mse"):
        assert metrics[f"mean/{key}"] == pytest.approx(sum(v[key] for v in verdicts) / 5, rel=1e-12)


def test_a_set_checker_keeps_its_aggregate_call(evaluated):
    out, metrics, calls = evaluated
    mine = [c[2] for c in calls if c[0] == "_test_counted_set"]
    assert mine == [5, 1, 1, 1, 1, 1]  # the set once (its spread needs all), then each sample for its verdict
    verdicts = _verdicts(out, "set")
    assert all(v["peak_spread"] == 0.0 for v in verdicts)  # one sample has no spread
    assert metrics["set/class_acc"] == pytest.approx(sum(v["class_acc"] for v in verdicts) / 5, rel=1e-12)
    assert math.isfinite(metrics["set/peak_spread"])


def test_a_joint_checker_gives_aggregate_and_verdicts_in_one_pass(evaluated):
    out, metrics, calls = evaluated
    assert [c for c in calls if c[0] == "_test_counted_joint"] == [
        ("_test_counted_joint", "score_with_verdicts", 5)
    ]
    verdicts = _verdicts(out, "joint")
    assert all(set(v) == {"class_acc", "template_mse"} for v in verdicts)
    assert metrics["joint/template_mse"] == pytest.approx(
        sum(v["template_mse"] for v in verdicts) / 5, rel=1e-12
    )
    assert "joint/peak_spread" in metrics


def test_the_recorder_answers_only_the_evaluated_samples():
    import copy

    from lumina_core.training.verdicts import VerdictRecorder

    ds = CountedMeanBumps(split="val", size=4)
    items = [ds[i] for i in range(3)]
    samples = [it["sample"] for it in items]
    rec = VerdictRecorder(ds, samples, items)
    assert (
        rec.dataset.modality == "_test_seq" and copy.copy(rec.dataset) is not None
    )  # the rest is the dataset's
    CALLS.clear()
    other = [s.clone() for s in samples]  # equal values, other objects: not the evaluated samples
    assert rec.dataset.score(other, items) == ds.score(other, items)
    assert rec.verdicts is None and [c[2] for c in CALLS] == [3, 3]  # passed through, nothing recorded
    scores = rec.dataset.score(list(samples), list(items))  # the evaluated ones (a plugin may copy the lists)
    assert len(rec.verdicts) == 3 and scores["class_acc"] == 1.0
    plain = object()
    assert VerdictRecorder(plain, samples, items).dataset is plain  # no checker: nothing to stand in for

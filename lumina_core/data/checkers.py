"""The checker contract (:class:`Checker`, returning :class:`Scores`) and tools for writing one.

A checker grades generated samples against their items' ground truth: a registered dataset that has one
subclasses :class:`Checker` next to its dataset base (``DATASETS.register`` refuses a dataset that defines
``score`` without it) and implements ``score(samples, items, **kw) -> {metric: float}``. The framework reads
every grading as :class:`Scores` (a ``{metric: float}``; ``chance``, where present, is the score of a
random guess), so the keys of ``metrics.json`` are the checker's keys. ``lumina eval`` reports the set's
scores and writes every sample with its own verdict (``score([sample], [item])``); to grade each sample once,
a checker says how the two relate (:mod:`lumina_core.training.verdicts` uses these):

* ``score_is_mean = True`` (a class attribute): every key of the set's score is the mean over the samples of
  the sample's verdict, NaN left out; :func:`mean_verdict` computes it from the verdicts;
* ``score_with_verdicts(samples, items, **kw) -> (scores, verdicts)``: one pass gives both, for a checker
  whose set score is no mean - :func:`score_against_captions` is one.

:func:`score_with_verdicts` gives ``(scores, verdicts)`` for any checker, grading each sample once where the
checker allows it.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar


class Scores(dict[str, float]):
    """A checker's grading: metric name -> float, in the checker's order.

    A ``dict`` subclass, so it is written to JSON (``metrics.json``, the scored manifest) with the checker's
    own keys and compares equal to a plain dict of the same numbers. A plugin's ``evaluate`` may add its own
    metrics to it (an FID-style distance next to the checker's adherence); every value is kept as a float."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        super().__init__({str(k): float(v) for k, v in (values or {}).items()})

    @property
    def chance(self) -> float | None:
        """The score of a random guess, where the checker reports one (key ``chance``)."""
        return self.get("chance")

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(str(key), float(value))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = 0.0) -> float:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]


class Checker(abc.ABC):
    """The checker contract: a dataset that grades generated samples against its items' ground truth.

    Subclass it next to the dataset base (``class MyData(Checker, LuminaDataset)``) and implement
    :meth:`score`. Declare how a set's score relates to each sample's so ``lumina eval`` grades each sample
    once: ``score_is_mean = True`` when every key of a set's score is the mean over the samples of
    ``score([sample], [item])`` (NaN left out), or override :meth:`score_with_verdicts` when one pass gives
    both (:func:`score_against_captions` does). The dataset's ``condition_kind`` (``text``, ``class``,
    ``none``) says what the conditions it grades against are.
    """

    #: every key of a set's score is the mean of the samples' own scores (NaN left out)
    score_is_mean: ClassVar[bool] = False
    condition_kind: str  # declared by the dataset base (or a ConditionParameter property)

    @abc.abstractmethod
    def score(self, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any) -> Mapping[str, float]:
        """Scores of generated ``samples`` for ``items`` (one per item, same order): ``{metric: float}``,
        in [0, 1] where the metric allows it; ``chance`` may give the score of a random guess."""

    def score_with_verdicts(
        self, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any
    ) -> tuple[Scores, list[Scores]]:
        """The set's scores and each sample's verdict: with ``score_is_mean`` each sample graded alone, once,
        and the scores their :func:`mean_verdict`; else the set as a whole and each sample alone."""
        return _grade(self, samples, items, **kwargs)


def mean_verdict(verdicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key by key, the mean of per-sample scores over the samples that have the key, NaN left out.

    A key whose values are all equal (a checker's constant chance level) keeps that value exactly rather
    than a sum divided back (``(0.1 + 0.1 + 0.1) / 3 != 0.1``); one whose values are all NaN stays NaN.
    """
    if not verdicts:
        raise ValueError("mean_verdict: no verdicts to average (a checker grades at least one sample)")
    keys = list(dict.fromkeys(k for v in verdicts for k in v))
    out: dict[str, float] = {}
    for key in keys:
        values = [float(v[key]) for v in verdicts if key in v]
        finite = [x for x in values if not math.isnan(x)]
        if not finite:
            out[key] = math.nan
        elif all(x == finite[0] for x in finite):
            out[key] = finite[0]
        else:
            out[key] = math.fsum(finite) / len(finite)
    return out


def _floats(scores: Mapping[str, Any]) -> Scores:
    return Scores(scores)


def score_with_verdicts(
    dataset: Any, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any
) -> tuple[Scores, list[Scores]]:
    """The set's scores and each sample's verdict from ``dataset``'s checker (``kwargs`` go to every call):
    its :meth:`Checker.score_with_verdicts` (checked to give one verdict per sample), or for an object that
    only has ``score`` (a dataset wrapper, a test's stand-in) the same grading :class:`Checker` does."""
    if len(samples) != len(items):
        raise ValueError(
            f"score needs one sample per item; got {len(samples)} samples and {len(items)} items"
        )
    joint = getattr(dataset, "score_with_verdicts", None)
    if not callable(joint):
        return _grade(dataset, samples, items, **kwargs)
    scores, verdicts = joint(samples, items, **kwargs)
    if len(verdicts) != len(samples):
        raise ValueError(
            f"{type(dataset).__name__}.score_with_verdicts gave {len(verdicts)} verdicts for "
            f"{len(samples)} samples; it must give one per sample, in order"
        )
    return _floats(scores), [_floats(v) for v in verdicts]


def _grade(
    checker: Any, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any
) -> tuple[Scores, list[Scores]]:
    """With ``score_is_mean`` each sample graded alone and the scores their :func:`mean_verdict`; else the set
    graded as a whole and each sample alone (twice: nothing says the two agree)."""
    if len(samples) != len(items):
        raise ValueError(
            f"score needs one sample per item; got {len(samples)} samples and {len(items)} items"
        )
    whole = (
        None if getattr(checker, "score_is_mean", False) else _floats(checker.score(samples, items, **kwargs))
    )
    alone = [_floats(checker.score([x], [it], **kwargs)) for x, it in zip(samples, items, strict=True)]
    return (Scores(mean_verdict(alone)) if whole is None else whole), alone


def score_against_captions(
    graded: Sequence[Any],
    truths: Sequence[Mapping[str, Any]],
    check: Callable[[Any, Mapping[str, Any]], Mapping[str, bool]],
    aggregate: Callable[[Sequence[Mapping[str, bool]]], dict[str, float]],
    constants: Collection[str] = ("chance",),
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """A checker whose chance level is each sample graded against another item's caption.

    ``check(graded[i], truth)`` says which attributes of ``truth`` (an item's ground truth) sample ``i``
    satisfies (``graded[i]`` is the sample, or what was measured on it once); ``aggregate`` turns a list of
    such checks into scores. The set's scores are ``aggregate`` of each sample checked against its own item
    and, with two samples or more, the same against the next item's truth (``i -> i + 1 mod n``, a
    derangement), keys suffixed ``_shuffled``: the score of the same samples for captions they were not made
    for. Keys in ``constants`` (a chance level ``aggregate`` computes from the classes, not from the checks)
    are the same either way and are reported once, unsuffixed. The verdict of sample ``i`` is
    ``aggregate([its own check])`` - what the set's scores are for that sample alone. Each sample is checked
    once against its own caption, once against the other.
    """
    if len(graded) != len(truths) or not graded:
        raise ValueError(f"score needs as many samples as items (> 0); got {len(graded)} and {len(truths)}")
    own = [check(g, t) for g, t in zip(graded, truths, strict=True)]
    scores = aggregate(own)
    if len(graded) > 1:
        other = [check(g, truths[(i + 1) % len(truths)]) for i, g in enumerate(graded)]
        scores.update({f"{k}_shuffled": v for k, v in aggregate(other).items() if k not in constants})
    return scores, [aggregate([c]) for c in own]

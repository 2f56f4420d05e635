"""Each evaluated sample graded once: the set's scores and every sample's own verdict from one grading.

``lumina eval`` reports a task's scores (``plugin.evaluate(samples, items, dataset)``, which calls the
dataset's checker ``dataset.score``) and writes each sample with the checker's verdict on it alone. Grading
is the costly part (the multi-view checker renders the ground truth of every view), so a checker that can
says how its set score relates to its verdicts (the dataset contract, :mod:`lumina_core.data.contract`):

* ``score_is_mean = True``: for every key, ``score(samples, items)`` is the mean over the samples of
  ``score([sample], [item])``, NaN left out (a sample the checker cannot grade). Each sample is graded alone,
  once, and the set's scores are :func:`mean_verdict` of the verdicts;
* ``score_with_verdicts(samples, items, **kw) -> (scores, verdicts)``: one pass gives the set's scores and one
  verdict per sample (e.g. a chance level measured against other items' captions, which is no mean);
* neither: the set is graded as a whole for its scores and each sample alone for its verdict (twice, as
  nothing says the two agree).

:class:`VerdictRecorder` does this inside ``plugin.evaluate`` without the plugin knowing: it stands in for the
dataset, answers the plugin's ``score`` call on the evaluated samples as above (with the keywords the
plugin passes, e.g. the multi-view plugin's ``given_views``) and keeps the verdicts for the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


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


def _floats(scores: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in scores.items()}


def score_with_verdicts(
    dataset: Any, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The set's scores and each sample's verdict from ``dataset``'s checker, each sample graded once when the
    checker says how (module doc). ``kwargs`` go to every checker call."""
    if len(samples) != len(items):
        raise ValueError(
            f"score needs one sample per item; got {len(samples)} samples and {len(items)} items"
        )
    joint = getattr(dataset, "score_with_verdicts", None)
    if callable(joint):
        scores, verdicts = joint(samples, items, **kwargs)
        if len(verdicts) != len(samples):
            raise ValueError(
                f"{type(dataset).__name__}.score_with_verdicts gave {len(verdicts)} verdicts for "
                f"{len(samples)} samples; it must give one per sample, in order"
            )
        return _floats(scores), [_floats(v) for v in verdicts]
    whole = (
        None if getattr(dataset, "score_is_mean", False) else _floats(dataset.score(samples, items, **kwargs))
    )
    alone = [_floats(dataset.score([x], [it], **kwargs)) for x, it in zip(samples, items, strict=True)]
    return (mean_verdict(alone) if whole is None else whole), alone


class VerdictRecorder:
    """Stands in for ``dataset`` while ``plugin.evaluate(samples, items, recorder.dataset)`` runs.

    The plugin's ``score`` call on exactly the evaluated samples and items (the same objects, in order) is
    answered by :func:`score_with_verdicts`, whose verdicts are kept in :attr:`verdicts`; any other call goes
    to the dataset unchanged. Every other attribute is the dataset's. A dataset without a checker is not
    wrapped (``recorder.dataset is dataset``) and :attr:`verdicts` stays None.
    """

    def __init__(self, dataset: Any, samples: Sequence[Any], items: Sequence[dict]) -> None:
        self.samples, self.items = list(samples), list(items)
        self.verdicts: list[dict[str, float]] | None = None
        self.kwargs: dict[str, Any] = {}
        self.dataset = _Recording(dataset, self) if callable(getattr(dataset, "score", None)) else dataset

    def matches(self, samples: Sequence[Any], items: Sequence[dict]) -> bool:
        """True when ``samples`` and ``items`` are the evaluated ones (the same objects, in order)."""
        return (
            len(samples) == len(self.samples)
            and len(items) == len(self.items)
            and all(a is b for a, b in zip(samples, self.samples, strict=True))
            and all(a is b for a, b in zip(items, self.items, strict=True))
        )


class _Recording:
    """The dataset as the plugin sees it during evaluation (see :class:`VerdictRecorder`)."""

    def __init__(self, dataset: Any, recorder: VerdictRecorder) -> None:
        self._dataset, self._recorder = dataset, recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def score(self, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any) -> dict[str, float]:
        rec = self._recorder
        if rec.verdicts is not None or not rec.matches(samples, items):
            return self._dataset.score(samples, items, **kwargs)
        scores, rec.verdicts = score_with_verdicts(self._dataset, samples, items, **kwargs)
        rec.kwargs = dict(kwargs)
        return scores

"""``lumina eval`` grades each sample once: the set's scores and every sample's own verdict from one grading.

``lumina eval`` reports a task's scores (``plugin.evaluate(samples, items, dataset)``, which calls the
dataset's checker ``dataset.score``) and writes each sample with the checker's verdict on it alone
(``write_scored_samples``). Grading is the costly part (the multi-view checker renders the ground truth of
every view), so both come from one grading, :func:`lumina_core.data.checkers.score_with_verdicts`: each
sample graded once when the checker declares ``score_is_mean`` or gives ``score_with_verdicts``, else the set
as a whole and each sample alone, as before.

:class:`VerdictRecorder` does this inside ``plugin.evaluate`` without the plugin knowing: it stands in for the
dataset, answers the plugin's ``score`` call on the evaluated samples (with the keywords the plugin passes,
e.g. the multi-view plugin's ``given_views``) and keeps the verdicts for the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lumina_core.data.checkers import score_with_verdicts

__all__ = ["VerdictRecorder"]


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
        if name in ("_dataset", "_recorder"):  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._dataset, name)

    def score(self, samples: Sequence[Any], items: Sequence[dict], **kwargs: Any) -> dict[str, float]:
        rec = self._recorder
        if rec.verdicts is not None or not rec.matches(samples, items):
            return self._dataset.score(samples, items, **kwargs)
        scores, rec.verdicts = score_with_verdicts(self._dataset, samples, items, **kwargs)
        rec.kwargs = dict(kwargs)
        return scores

"""Diversity as part of quality: how far apart the samples made for one condition are, against the real items
of that condition.

A model (or a composition of tasks) that collapses - one picture per caption, one clip per prompt - can still
score well on an adherence checker. The within-condition spread exposes it. With features ``f`` of the
samples (any fixed embedding; the modalities use the feature networks of their FID/FAD-style scores) grouped
by condition ``c``:

    spread(c)  = mean over pairs i < j in group c of ||f_i - f_j||_2
    spread     = mean of spread(c) over the conditions with at least two samples

computed for the generated samples and, over the same conditions, for the real items. ``spread_ratio =
spread / spread_real``: about 1 when samples vary as much as the data does for a condition, 0 when every
sample of a condition is the same, above 1 for samples more scattered than the data (noise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch
from torch import Tensor


def _mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over the pairs of rows of ``features`` (n >= 2)."""
    n = features.shape[0]
    dist = torch.cdist(features.double()[None], features.double()[None])[0]
    return float(dist.triu(diagonal=1).sum() / (n * (n - 1) / 2))


def _group_spread(features: Tensor, conditions: Sequence[Hashable]) -> tuple[float, list[Hashable]]:
    groups: dict[Hashable, list[int]] = {}
    for i, c in enumerate(conditions):
        groups.setdefault(c, []).append(i)
    shared = [c for c, idx in groups.items() if len(idx) >= 2]
    if not shared:
        return math.nan, []
    values = [_mean_pairwise_distance(features[groups[c]]) for c in shared]
    return math.fsum(values) / len(values), shared


def within_condition_spread(
    generated: Tensor, real: Tensor, conditions: Sequence[Hashable]
) -> dict[str, float]:
    """``spread``, ``spread_real`` and ``spread_ratio`` (see the module doc) of ``generated`` (N, D) features
    made for ``conditions[i]`` and ``real`` (N, D) features of the items with those conditions.

    NaN when no condition has two samples (nothing to compare); ``spread_ratio`` NaN when the real items of
    every shared condition are identical."""
    if generated.dim() != 2 or real.dim() != 2 or generated.shape[1] != real.shape[1]:
        raise ValueError(
            f"expected (N, D) features on both sides with one D; got {tuple(generated.shape)} and "
            f"{tuple(real.shape)}"
        )
    if not len(conditions) == generated.shape[0] == real.shape[0]:
        raise ValueError(
            f"one condition per sample and per real item; got {len(conditions)} conditions, "
            f"{generated.shape[0]} samples and {real.shape[0]} real items"
        )
    spread, _ = _group_spread(generated, conditions)
    spread_real, _ = _group_spread(real, conditions)
    ratio = spread / spread_real if spread_real > 0 else math.nan
    return {"spread": spread, "spread_real": spread_real, "spread_ratio": ratio}


def condition_key(condition: object) -> Hashable:
    """A hashable key for an item's condition (captions and class ids as they are; anything else by repr)."""
    return condition if isinstance(condition, str | int | type(None)) else repr(condition)

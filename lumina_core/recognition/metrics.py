"""Classification metrics from logits and integer targets: accuracy, top-k accuracy, confusion matrix.

``confusion[i, j]`` counts the items of true class ``i`` predicted as ``j``; accuracy is its trace over its
sum; the recall of class ``i`` is ``confusion[i, i] / sum_j confusion[i, j]`` (NaN for a class with no item).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(logits: Tensor, targets: Tensor) -> None:
    if logits.dim() != 2 or targets.dim() != 1 or logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"expected logits (N, K) and targets (N,); got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of items whose highest logit is the target."""
    _check(logits, targets)
    if len(targets) == 0:
        raise ValueError("accuracy of zero items is undefined")
    return float((logits.argmax(dim=-1) == targets).float().mean())


def top_k_accuracy(logits: Tensor, targets: Tensor, k: int) -> float:
    """Fraction of items whose target is among the ``k`` highest logits (``k`` capped at the class count)."""
    _check(logits, targets)
    if len(targets) == 0:
        raise ValueError("accuracy of zero items is undefined")
    k = max(1, min(int(k), logits.shape[1]))
    top = logits.topk(k, dim=-1).indices  # (N, k)
    return float((top == targets[:, None]).any(dim=-1).float().mean())


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    if predictions.shape != targets.shape or predictions.dim() != 1:
        raise ValueError(
            f"predictions and targets must be (N,) each; got {tuple(predictions.shape)}, {tuple(targets.shape)}"
        )
    for name, v in (("predictions", predictions), ("targets", targets)):
        if len(v) and (int(v.min()) < 0 or int(v.max()) >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}; got {int(v.min())}..{int(v.max())}")
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(confusion: Tensor) -> Tensor:
    """(K,) recall of each true class (NaN where the class has no item)."""
    totals = confusion.sum(dim=1).double()
    return confusion.diagonal().double() / totals

"""The ``classification`` objective: the trunk as an encoder of any modality's tokens, a head on pooled tokens.

For a token batch with labels ``y`` (B,) in ``0..K-1``::

    h, _   = model.encode(tokens, t = time)            # hidden tokens (B, L, dim) at one fixed flow time
    logits = head(h, mask)                              # (B, K), head = model.heads[task] (mean or class token)
    loss   = 1/B sum_b CE_eps(logits_b, y_b)            # cross-entropy with label smoothing eps:
    CE_eps(z, y) = -(1 - eps) log p_y - eps/K sum_k log p_k,   p = softmax(z)

With ``rope_scaling`` the trunk runs under that RoPE scaling in training, evaluation and prediction alike; the
shipped recognition recipes (digits_tiny, shapes_attributes_tiny) use ``{name: pi, params: {shrink: true}}``:
PI on the derived scale ``s = grid / training grid`` per axis in both directions, so every input's positions
span the training grid (an image of any size is read as the same field of view; see docs/recognition.md). The
trunk sees the clean tokens (``time = 1``, the data end of the flow) unless the recipe picks another fixed
time, so a trunk shared with a flow-matching task reads images as it does at the end of generation. The label
of an item is its ``condition`` or one of its ``meta`` entries (``label: meta.shape``); string labels are
looked up in the declared ``classes`` and anything outside them is an error naming the label and the classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumina_core.objective import LossResult, Objective
from lumina_core.recognition.heads import POOLS, ClassifierHead
from lumina_core.recognition.metrics import accuracy, confusion_matrix, per_class_recall, top_k_accuracy
from lumina_core.registry import OBJECTIVES
from lumina_core.tokens import Condition, TokenBatch


@OBJECTIVES.register("classification")
class Classification(Objective):
    """Cross-entropy classification of a task's samples by the shared trunk.

    Args:
        classes: the number of classes K (names "0".."K-1") or the list of class names.
        label: where an item's label is: "condition" or "meta.<key>".
        pool: "mean" (masked mean of the hidden tokens) or "cls" (a class token with class attention).
        label_smoothing: eps of the smoothed cross-entropy (0: plain cross-entropy).
        time: the fixed flow time the trunk is run at (1: clean data).
        top_k: the k of the top-k accuracy reported by evaluation.
        rope_scaling: the RoPE scaling the trunk runs with in training and, unless the caller passes another
            (the task's ``sampling.rope_scaling``), in evaluation and prediction: a recipe component
            ``{name: pi, params: {shrink: true}}``, a kind's name, or None (plain positions).
    """

    generative = False

    def __init__(
        self,
        classes: int | Sequence[str],
        label: str = "condition",
        pool: str = "mean",
        label_smoothing: float = 0.1,
        time: float = 1.0,
        top_k: int = 5,
        rope_scaling: dict[str, Any] | str | None = None,
    ) -> None:
        from lumina_core.model.rope import RopeScaling

        problems = []
        if isinstance(classes, bool) or not isinstance(classes, int | Sequence) or isinstance(classes, str):
            problems.append(f"classes must be a number of classes or a list of names; got {classes!r}")
            names: list[str] = []
        elif isinstance(classes, int):
            names = [str(i) for i in range(classes)]
        else:
            names = [str(c) for c in classes]
        if len(names) < 2 and not problems:
            problems.append(f"classes must declare at least 2 classes; got {classes!r}")
        if len(set(names)) != len(names):
            problems.append(f"class names must be unique; got {names}")
        if label != "condition" and not (label.startswith("meta.") and len(label) > 5):
            problems.append(f"label must be 'condition' or 'meta.<key>'; got {label!r}")
        if pool not in POOLS:
            problems.append(f"pool must be one of {POOLS}; got {pool!r}")
        if not 0.0 <= float(label_smoothing) < 1.0:
            problems.append(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        if not 0.0 <= float(time) <= 1.0:
            problems.append(f"time must be in [0, 1] (flow time; 1 = data); got {time}")
        if int(top_k) < 1:
            problems.append(f"top_k must be at least 1; got {top_k}")
        scaling = None
        try:
            scaling = RopeScaling.build(rope_scaling)
        except (TypeError, ValueError) as exc:
            problems.append(f"rope_scaling: {exc}")
        if problems:
            raise ValueError("invalid classification objective: " + "; ".join(problems))
        self.class_names = names
        self.label, self.pool = label, pool
        self.label_smoothing, self.time, self.top_k = float(label_smoothing), float(time), int(top_k)
        self.rope_scaling = scaling
        self._index = {n: i for i, n in enumerate(names)}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # -- contract ------------------------------------------------------------------------------------------
    def make_head(self, dim: int) -> nn.Module:
        return ClassifierHead(dim, self.num_classes, self.pool)

    def label_of(self, item: dict[str, Any]) -> Any:
        """The raw label of one dataset item (its condition or ``meta[key]``)."""
        if self.label == "condition":
            return item.get("condition")
        key = self.label[5:]
        meta = item.get("meta") or {}
        if key not in meta:
            raise ValueError(
                f"the item has no meta[{key!r}] to use as its label; its meta keys: {sorted(meta)}"
            )
        return meta[key]

    def class_index(self, value: Any) -> int:
        """Class id of a raw label: an id in 0..K-1 or a declared class name."""
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, str) and value in self._index:
            return self._index[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.num_classes:
            return value
        shown = self.class_names if self.num_classes <= 20 else [*self.class_names[:20], "..."]
        raise ValueError(
            f"label {value!r} is outside the declared classes: expected a class id 0..{self.num_classes - 1} "
            f"or one of the names {shown}"
        )

    def targets(self, batch: dict[str, list[Any]]) -> Tensor:
        """(B,) int64 class ids of a collated batch ``{"samples", "conditions", "meta"}``."""
        items = [{"condition": c, "meta": m} for c, m in zip(batch["conditions"], batch["meta"], strict=True)]
        return torch.tensor([self.class_index(self.label_of(it)) for it in items], dtype=torch.long)

    def logits(
        self,
        model: Any,
        task: str,
        batch: TokenBatch,
        cond: Condition | None = None,
        rope_scaling: Any = None,
    ) -> Tensor:
        """(B, K) class logits of a token batch, under ``rope_scaling`` (None: the objective's own)."""
        if task not in model.heads:
            raise ValueError(f"task {task!r} has no classifier head; tasks with heads: {list(model.heads)}")
        scaling = self.rope_scaling if rope_scaling is None else rope_scaling
        h, _ = model.encode(batch, self.time, cond, task=task, rope_scaling=scaling)
        return model.heads[task](h, batch.mask).float()

    def loss(
        self,
        model: Any,
        task: str,
        batch: TokenBatch,
        cond: Condition,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> LossResult:
        """Label-smoothed cross-entropy; stats ``loss`` and ``accuracy`` (of this batch)."""
        if targets is None:
            raise ValueError("the classification objective needs the batch's labels (targets)")
        if self.label == "condition" and cond is not None and cond.context is not None:
            raise ValueError(
                "the classification label is the item's condition, and the trunk is conditioned on it too, "
                "which gives the answer away: use `conditioning: {encoder: {name: none}}` for this task"
            )
        logits = self.logits(model, task, batch, cond)
        y = targets.to(logits.device)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(-1) == y).float().mean()
        return LossResult.of(loss, accuracy=acc)

    # -- evaluation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        model: Any,
        task: str,
        plugin: Any,
        samples: Sequence[Tensor],
        device: str = "cpu",
        batch_size: int = 16,
        rope_scaling: Any = None,
        conditioner: Any = None,
        conditions: Sequence[Any] | None = None,
    ) -> Tensor:
        """(N, K) logits of raw samples, tokenized by ``plugin`` in batches of ``batch_size``."""
        out = []
        for start in range(0, len(samples), max(1, int(batch_size))):
            chunk = list(samples[start : start + batch_size])
            tokens = plugin.tokenize(chunk).to(device)
            cond = None
            if conditioner is not None:
                raw = list(conditions[start : start + batch_size]) if conditions else [None] * len(chunk)
                cond = conditioner.encode(raw, device=device)
                if self.label == "condition" and cond.context is not None:
                    cond = None  # never show the classifier its own label
            out.append(self.logits(model, task, tokens, cond, rope_scaling).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    def evaluate(
        self,
        model: Any,
        task: str,
        plugin: Any,
        conditioner: Any,
        items: Sequence[dict[str, Any]],
        device: str = "cpu",
        batch_size: int = 16,
        rope_scaling: Any = None,
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Accuracy, top-k accuracy, mean cross-entropy (no smoothing) and per-class recall of ``items``;
        details: the confusion matrix (rows true, columns predicted) and the class names."""
        if not items:
            raise ValueError("nothing to evaluate: the held-out split has no items")
        y = torch.tensor([self.class_index(self.label_of(it)) for it in items], dtype=torch.long)
        logits = self.predict(
            model, task, plugin, [it["sample"] for it in items], device, batch_size, rope_scaling
        )
        conf = confusion_matrix(logits.argmax(-1), y, self.num_classes)
        scores = {
            "accuracy": accuracy(logits, y),
            f"top{min(self.top_k, self.num_classes)}_accuracy": top_k_accuracy(logits, y, self.top_k),
            "cross_entropy": float(F.cross_entropy(logits, y)),
            "chance": 1.0 / self.num_classes,
        }
        recall = per_class_recall(conf)
        if self.num_classes <= 20:
            scores.update({f"recall/{n}": float(r) for n, r in zip(self.class_names, recall, strict=True)})
        details = {"classes": list(self.class_names), "confusion": conf.tolist(), "items": len(items)}
        return scores, details

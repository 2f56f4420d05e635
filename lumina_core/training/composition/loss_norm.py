"""``loss_norm``: each task's loss divided by a running mean of itself, so every task pulls on the shared trunk
with a loss of about 1 whatever its scale.

    m_k <- beta m_k + (1 - beta) L_k        (L_k detached, averaged over the ranks; only at steps that run k)
    L~_k = L_k / (m_k / (1 - beta^n_k))      (bias-corrected: n_k steps of task k so far, so L~_k = 1 at its first)

The gradient of task k is scaled by ``1 / mean loss of k``: a task whose loss is ten times another's no
longer takes ten times the pull. ``m_k`` and ``n_k`` are saved in every checkpoint.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition


@COMPOSITIONS.register("loss_norm")
class LossNormalisation(Composition):
    """Divide each task's loss by the bias-corrected running mean of its value (``beta``: the mean's decay per
    step of the task; ``eps``: floor of the divisor)."""

    registered_name = "loss_norm"

    def __init__(self, beta: float = 0.99, eps: float = 1e-6) -> None:
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"loss_norm: beta must be in [0, 1); got {beta}")
        self.beta, self.eps = float(beta), float(eps)
        self.mean: dict[str, float] = {}  # the running mean, not bias-corrected
        self.count: dict[str, int] = {}

    def running_mean(self, task: str) -> float | None:
        """The bias-corrected running mean of the task's loss (None before its first step)."""
        n = self.count.get(task, 0)
        if n == 0:
            return None
        return self.mean[task] / (1.0 - self.beta**n)

    def scale_losses(self, losses: dict[str, Tensor], statistics: dict[str, float]) -> dict[str, Tensor]:
        out = {}
        for name, loss in losses.items():
            value = float(statistics[name])
            self.mean[name] = self.beta * self.mean.get(name, 0.0) + (1.0 - self.beta) * value
            self.count[name] = self.count.get(name, 0) + 1
            out[name] = loss / max(self.running_mean(name), self.eps)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "count": dict(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = {k: float(v) for k, v in state.get("mean", {}).items()}
        self.count = {k: int(v) for k, v in state.get("count", {}).items()}

"""``grad_norm``: each task's gradient divided by a running mean of its own norm on the shared trunk, so every
task enters the optimiser at about the same scale.

    g_k   = d (loss_weight_k L_k) / d theta                 (computed on its own, all of the task's parameters)
    r_k  <- beta r_k + (1 - beta) |g_k on the trunk|        (averaged over the ranks; only at steps that run k)
    grad  = sum_k g_k / (r_k / (1 - beta^n_k))             (bias-corrected: n_k steps of task k so far)

Why: AdamW divides each weight's step by the root of a running mean of its squared gradients, and on the
shared trunk that mean is *shared* by the tasks. A task whose trunk gradients are several times smaller
than the others' (measured with ``train.diagnostics_every``: on the image / audio / point-cloud recipe the
image task's are 2-5x smaller) takes correspondingly smaller steps there than it would alone, where the mean
is its own. ``loss_norm`` evens out the loss values, which need not be what differs; this evens out what the
optimiser sees. The running means are saved in every checkpoint. Works under both mixings (under
``weighted`` a step has one task, so this costs nothing beyond a norm); one process only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition, fsdp_problems, multi_process_problems


@COMPOSITIONS.register("grad_norm")
class GradientNormalisation(Composition):
    """Scale each task's gradient by 1 / (bias-corrected running mean of its trunk gradient norm)
    (``beta``: the mean's decay per step of the task; ``eps``: floor of the divisor)."""

    registered_name = "grad_norm"
    owns_backward = True

    def __init__(self, beta: float = 0.99, eps: float = 1e-8) -> None:
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"grad_norm: beta must be in [0, 1); got {beta}")
        self.beta, self.eps = float(beta), float(eps)
        self.mean: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def running_norm(self, task: str) -> float | None:
        n = self.count.get(task, 0)
        return None if n == 0 else self.mean[task] / (1.0 - self.beta**n)

    def backward(
        self, losses: dict[str, Tensor], shared: list[nn.Parameter], params: list[nn.Parameter]
    ) -> None:
        shared_ids = {id(s) for s in shared}
        is_shared = [id(p) in shared_ids for p in params]
        totals: list[Tensor | None] = [None] * len(params)
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            trunk = [
                g.detach().double().norm()
                for g, sh in zip(grads, is_shared, strict=True)
                if sh and g is not None
            ]
            norm = float(torch.stack(trunk).norm()) if trunk else 0.0
            self.mean[name] = self.beta * self.mean.get(name, 0.0) + (1.0 - self.beta) * norm
            self.count[name] = self.count.get(name, 0) + 1
            scale = 1.0 / max(self.running_norm(name), self.eps)
            for i, g in enumerate(grads):
                if g is not None:
                    totals[i] = g * scale if totals[i] is None else totals[i] + g * scale
        for p, g in zip(params, totals, strict=True):
            p.grad = g

    def state_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "count": dict(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = {k: float(v) for k, v in state.get("mean", {}).items()}
        self.count = {k: int(v) for k, v in state.get("count", {}).items()}

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        out = super().problems(mixing, tasks, train) + multi_process_problems(self.name, train)
        return out + fsdp_problems(self.name, train, "it needs each task's whole trunk gradient")

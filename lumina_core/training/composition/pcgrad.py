"""``pcgrad``: projecting conflicting gradients (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning").

Each task's gradient on the shared trunk, g_k, is computed on its own. For every task k, in a random order of
the other tasks j, when the two conflict (g_k . g_j < 0) the component of g_k along the *original* g_j is
removed:

    g_k <- g_k - (g_k . g_j) / |g_j|^2  g_j

and the trunk's gradient is the sum of the projected g_k. A task's own parameters (its adapter, its head)
get its own gradient unchanged. Needs ``train.mixing: all`` (a step with one task has nothing to project
against). The random orders come from a generator seeded with the number of steps so far (saved with the
checkpoint), so a resumed run repeats them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition, fsdp_problems, multi_process_problems


def project_conflicting(grads: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """PCGrad's projection of flat per-task gradients (each 1-D, same length); the inputs are left as they
    are. Computed in float64, returned in the inputs' dtype."""
    originals = [g.detach().double() for g in grads]
    out = []
    for k, g in enumerate(originals):
        g = g.clone()
        others = [j for j in range(len(originals)) if j != k]
        order = torch.randperm(len(others), generator=generator).tolist()
        for i in order:
            other = originals[others[i]]
            dot = torch.dot(g, other)
            if dot < 0:
                g -= dot / other.dot(other).clamp_min(1e-30) * other
        out.append(g.to(grads[k].dtype))
    return out


@COMPOSITIONS.register("pcgrad")
class PCGrad(Composition):
    """Gradient surgery on the shared trunk (see the module docstring)."""

    registered_name = "pcgrad"
    mixing = ("all",)
    mixing_reason = (
        "under 'weighted' each step trains one task, so there is no other task's gradient to project against"
    )
    owns_backward = True

    def __init__(self) -> None:
        self.steps = 0

    def backward(
        self, losses: dict[str, Tensor], shared: list[nn.Parameter], params: list[nn.Parameter]
    ) -> None:
        names = list(losses)
        shared_ids = {id(s) for s in shared}
        is_shared = [id(p) in shared_ids for p in params]
        per_task = [torch.autograd.grad(losses[k], params, allow_unused=True) for k in names]
        flat = [
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                       for g, p, sh in zip(grads, params, is_shared, strict=True) if sh])
            for grads in per_task
        ]  # fmt: skip
        generator = torch.Generator().manual_seed(self.steps)
        self.steps += 1
        total_shared = torch.stack(project_conflicting(flat, generator)).sum(0) if flat else None
        offset = 0
        for i, (p, sh) in enumerate(zip(params, is_shared, strict=True)):
            if sh:
                n = p.numel()
                p.grad = total_shared[offset : offset + n].view_as(p).clone()
                offset += n
                continue
            parts = [grads[i] for grads in per_task if grads[i] is not None]
            p.grad = torch.stack(parts).sum(0) if parts else None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        out = super().problems(mixing, tasks, train) + multi_process_problems(self.name, train)
        out += fsdp_problems(self.name, train, "it needs each task's whole trunk gradient")
        if train.get("lora") is not None:
            out.append("pcgrad does not work with train.lora")
        if len(tasks) < 2:
            out.append(f"pcgrad needs at least two tasks to project between; the recipe has {len(tasks)}")
        return out

"""``task_modulation``: every task owns the adaLN modulation of every trunk block, so each task scales and gates
the shared attention and feed-forward layers its own way; those layers stay shared.

A trunk block modulates its two sublayers from the conditioning vector ``c`` (B, cond_dim):

    [s_a, g_a, s_f, g_f] = W act(c) + b                                   (the trunk's, zero at the start)
    h   = x + tanh(g_a) * RMSNorm(Attention(RMSNorm(x) * (1 + s_a)))
    out = h + tanh(g_f) * RMSNorm(FFN(RMSNorm(h) * (1 + s_f)))

With this method task ``k``'s adapter holds its own ``(W_k, b_k)`` for every modulated block
(``adapters.<task>.task_modulation.<stream>.<i>``, zero-initialised, the shape of the block's own) and the
block computes

    [s_a, g_a, s_f, g_f] = (W act(c) + b) + (W_k act(c) + b_k)

while the trunk's own ``(W, b)`` are frozen where they start, at zero, so each task's modulation is its own
from the first step. ``train.init_from`` of a run trained without this method loads the trunk's trained
modulation, which is then frozen there, and leaves each task's own at zero: the run starts as the loaded
model and every task trains its own change of it. The tasks' gradients thus land on one set of modulation weights each, trained by that
task alone, as in a run of the task alone; only the attention, feed-forward, norms and embedders of the trunk
are shared. ``task_embedding`` (a per-task vector added to ``c``) changes the modulation only through the same
shared ``W``; this gives the per-channel scales and gates to the task (the per-task adaLN of
FiLM-style multi-task networks).

Cost: one ``Linear(cond_dim, 4 dim)`` per modulated block per task (the recipe's trunk, dim 128, 3 layers:
198 k parameters per task, about a sixth of the trunk's 1.19 M; the 2B preset: 4 x 2304 x 1024 x 24 layers, about
226 M per task), and one small matrix product per block. Every task's forward pass has exactly the
parameters of the model trained alone.

The weights are model weights: saved, averaged by the EMA, loaded with the checkpoint and used by ``sample``
and ``eval`` (the model a recipe builds has them whenever its ``train.composition`` names this method). Works
under either mixing, with every other method, on several processes (DDP); refused under ``train.strategy:
fsdp``, whose units would mix the frozen and the trained weights of a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lumina_core.model.family import modulation_linear
from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition, fsdp_problems, require_task_parts


def zero_modulations(cond_dim: int, widths: Sequence[int], like: torch.Tensor) -> nn.ModuleList:
    """One zero-initialised ``SiLU -> Linear(cond_dim, width)`` per block of a stream (widths: the blocks' own
    modulation widths), on ``like``'s device and dtype."""
    mods = nn.ModuleList()
    for width in widths:
        linear = nn.Linear(cond_dim, width, device=like.device, dtype=like.dtype)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        mods.append(nn.Sequential(nn.SiLU(), linear))
    return mods


@COMPOSITIONS.register("task_modulation")
class TaskModulation(Composition):
    """Per-task adaLN modulation of every trunk block; the trunk's own modulation frozen (module docstring)."""

    registered_name = "task_modulation"
    adapter_parts = ("task_modulation",)

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        trunk = model.trunk
        require_task_parts(model, "task_modulation")
        streams = trunk.modulated_streams()
        if not streams:
            raise ValueError(
                f"train.composition task_modulation needs a trunk with modulated blocks; model.family="
                f"{trunk.config.family!r} has none"
            )
        cond_dim = int(model.config.cond_dim)
        for name in tasks:
            adapter = model.adapters[name]
            like = next(adapter.parameters())
            adapter.task_modulation = nn.ModuleDict(
                {stream: zero_modulations(cond_dim, widths, like) for stream, widths in streams.items()}
            )
        for stream in streams:
            for block in getattr(trunk, stream):
                modulation_linear(block).requires_grad_(False)

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        return super().problems(mixing, tasks, train) + fsdp_problems(
            self.name, train, "its units would hold a block's frozen shared modulation beside trained weights"
        )

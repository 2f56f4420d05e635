"""``task_lora``: every task owns a low-rank update of every projection of the shared trunk blocks, so each task
has weights of its own inside attention and feed-forward while the full-rank weights stay shared.

For each block's projection ``W`` (``wqkv``: d -> q | k | v, ``wo``, ``w13``: d -> w1 | w3, ``w2``) task ``k``'s
adapter holds factors ``A_k`` (r, in) and ``B_k`` (out, r) (``adapters.<task>.task_lora.<stream>.<i>.<name>``)
and the block computes, on that task's forward passes only,

    W x  ->  W x + s B_k A_k x,        s = alpha / r,   B_k = 0 at the start (A_k: Kaiming-uniform, as LoRA)

so the network of each task starts as the shared one and ends as the shared weights plus that task's own
rank-r change of each projection: the mixture-of-adapters form of multi-task networks (a shared backbone, a
small private update per task), with the update of a LoRA (Hu et al. 2021). Unlike ``train.lora`` (fine-tuning:
the base frozen, one adapter) the shared weights keep training on every task's steps; the factors of task
``k`` get gradients from task ``k`` only. The caption keys and values of cross-attention are not adapted.

Cost per task: ``r (in + out)`` parameters per projection; the recipe's trunk (dim 128, 3 layers) at the
default r = 16 holds 117 k per task (a tenth of the trunk's 1.19 M), and each adapted projection two
small extra products.

The factors are model weights: saved, averaged by the EMA, loaded with the checkpoint and used by ``sample``
and ``eval`` (the model a recipe builds has them whenever its ``train.composition`` names this method).
Works under either mixing, with every other method (with ``task_modulation`` each task owns its scales and
gates too), and on several processes (DDP); refused under ``train.strategy: fsdp`` (not built for it: the
factors sit in the tasks' adapters, outside the sharded blocks that call them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from lumina_core.model.block import Block
from lumina_core.model.family import block_streams
from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition, fsdp_problems, require_task_parts

#: the projections of a block that get a task's update: (name, module path under the block)
PROJECTIONS: tuple[tuple[str, str], ...] = (
    ("wqkv", "attention.wqkv"),
    ("wo", "attention.wo"),
    ("w13", "feed_forward.w13"),
    ("w2", "feed_forward.w2"),
)


class LowRankUpdate(nn.Module):
    """``x -> s B A x`` (A: ``down`` (r, in), B: ``up`` (out, r), s = alpha / r), B zero at the start."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, like: Tensor) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False, device=like.device, dtype=like.dtype)
        self.up = nn.Linear(rank, out_features, bias=False, device=like.device, dtype=like.dtype)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        self.scale = float(alpha) / rank

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x)) * self.scale


def block_updates(block: Block, rank: int, alpha: float, like: Tensor) -> nn.ModuleDict:
    """One :class:`LowRankUpdate` per projection of ``block`` (:data:`PROJECTIONS`), of its shapes."""
    updates = nn.ModuleDict()
    for name, path in PROJECTIONS:
        linear = block.get_submodule(path)
        updates[name] = LowRankUpdate(linear.in_features, linear.out_features, rank, alpha, like)
    return updates


@COMPOSITIONS.register("task_lora")
class TaskLoRA(Composition):
    """A per-task rank-``rank`` update of every block projection (module docstring); ``alpha``: the update's
    scale is ``alpha / rank`` (default: ``rank``, a scale of 1)."""

    registered_name = "task_lora"
    adapter_parts = ("task_lora",)

    def __init__(self, rank: int = 16, alpha: float | None = None) -> None:
        if int(rank) != rank or int(rank) < 1:
            raise ValueError(f"task_lora: rank must be a positive integer; got {rank!r}")
        self.rank = int(rank)
        self.alpha = float(self.rank if alpha is None else alpha)
        if not self.alpha > 0:
            raise ValueError(f"task_lora: alpha must be > 0; got {alpha!r}")

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        return super().problems(mixing, tasks, train) + fsdp_problems(
            self.name,
            train,
            "the factors live in the tasks' adapters and are called from inside the sharded blocks",
        )

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        trunk = model.trunk
        require_task_parts(model, "task_lora")
        streams = block_streams(trunk)
        odd = sorted(
            {type(b).__name__ for blocks in streams.values() for b in blocks if not isinstance(b, Block)}
        )
        if not streams or odd:
            raise ValueError(
                f"train.composition task_lora adapts the projections of lumina_core.model.block.Block; "
                f"model.family={trunk.config.family!r} has {'no blocks' if not streams else 'blocks of ' + str(odd)}"
            )
        for name in tasks:
            adapter = model.adapters[name]
            like = next(adapter.parameters())
            adapter.task_lora = nn.ModuleDict(
                {
                    stream: nn.ModuleList(block_updates(b, self.rank, self.alpha, like) for b in blocks)
                    for stream, blocks in streams.items()
                }
            )

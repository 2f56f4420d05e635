"""``task_embedding``: a learned vector per task added to the trunk's conditioning vector, so the shared
trunk knows which task it runs and can modulate its blocks for it (a per-task adaLN shift).

    c = t_emb(t) + cap_emb(y) + e_task         (e_task: adapters.<task>.task_embedding, width cond_dim)

Every ``e_task`` starts at zero, so the model starts as the plain one. The vectors are model weights: saved,
averaged by the EMA and loaded with the checkpoint; they are used at sampling time as in training (the model
a recipe builds has them whenever its ``train.composition`` names this method).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition


@COMPOSITIONS.register("task_embedding")
class TaskEmbedding(Composition):
    """Give every task's adapter a zero-initialised ``task_embedding`` (cond_dim,) that the trunk adds to c."""

    registered_name = "task_embedding"
    adapter_parts = ("task_embedding",)

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        width = int(model.config.cond_dim)
        for name in tasks:
            adapter = model.adapters[name]
            ref = next(adapter.parameters())
            adapter.task_embedding = nn.Parameter(torch.zeros(width, device=ref.device, dtype=ref.dtype))

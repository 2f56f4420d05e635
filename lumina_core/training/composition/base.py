"""The composition method: what a multi-task run does, beyond the mixing, so the tasks share one trunk well.

A method may act at five places of a run (each hook is optional; the defaults change nothing):

    weights  = method.draw_weights(weights, sizes)     # train.mixing=weighted: each task's share of the steps
    method.prepare_model(model, tasks)                 # after the model is built (train, eval, sample alike)
    scaled   = method.scale_losses(losses)             # the step's task losses, before loss_weight and sum
    method.backward(losses, shared, params)            # the step's gradients (at most one method owns this)
    method.before_optimizer_step(opt, tasks, shared)   # after clipping, right before the optimiser steps

and keeps its own state (running statistics) in ``state_dict`` / ``load_state_dict``, which every checkpoint
stores, so a resumed run is the uninterrupted one bit for bit. ``problems(mixing, tasks, train)`` names what
the recipe does that the method cannot work with (``lumina config validate`` prints it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


class Composition:
    """Base class of ``train.composition`` entries (registry: :data:`lumina_core.registry.COMPOSITIONS`)."""

    #: the train.mixing modes the method works under (None: any)
    mixing: tuple[str, ...] | None = None
    #: True when the method computes the step's gradients itself (:meth:`backward`); at most one per run
    owns_backward: bool = False
    #: the attributes :meth:`prepare_model` adds to every task's adapter at a start where the model computes
    #: what it computes without them (zero updates): ``train.init_from`` of a checkpoint trained without the
    #: method leaves them at that start instead of refusing the checkpoint
    adapter_parts: tuple[str, ...] = ()

    def draw_weights(self, weights: dict[str, float], sizes: dict[str, int | None]) -> dict[str, float]:
        """Each task's draw weight under ``weighted`` mixing, given the recipe's and each task's training set
        size (None: unknown, e.g. a stream)."""
        return weights

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        """Change the freshly built model (before weights are loaded or the optimiser is built)."""

    def scale_losses(self, losses: dict[str, Tensor], statistics: dict[str, float]) -> dict[str, Tensor]:
        """The step's task losses, rescaled (before ``loss_weight``). ``statistics``: each loss's value, averaged
        over the ranks of a distributed run (what running statistics should be updated from)."""
        return losses

    def backward(
        self, losses: dict[str, Tensor], shared: list[nn.Parameter], params: list[nn.Parameter]
    ) -> None:
        """Compute the gradients of the weighted task ``losses`` into ``p.grad`` of ``params`` (``shared``: the
        trunk's parameters, a subset). Only called when :attr:`owns_backward`."""
        raise NotImplementedError

    def before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, tasks: Sequence[str], shared: Sequence[nn.Parameter]
    ) -> None:
        """Called right before ``optimizer.step()`` of a step that trains ``tasks`` (its batch's task names;
        one under ``weighted`` mixing), once the gradients are final (not on a skipped non-finite step).
        ``shared``: the trunk's trainable parameters, in a fixed order. The place to change what the step
        reads from the optimiser's state (``task_moments``: each task's own AdamW moments)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a checkpoint's)."""

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        """What in the recipe this method cannot work with, as messages (empty: fine)."""
        if self.mixing is not None and mixing not in self.mixing:
            return [
                f"{self.name} needs train.mixing={' or '.join(self.mixing)} (got {mixing!r}): "
                f"{self.mixing_reason}"
            ]
        return []

    #: why the method needs its mixing mode, for the message of :meth:`problems`
    mixing_reason: str = ""

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__)


# -- what several methods refuse alike (their messages name the method) ---------------------------------------
def multi_process_problems(name: str, train: dict[str, Any]) -> list[str]:
    """The message for a method that computes per-task gradients itself, on a run of several processes or
    nodes (its gradients would bypass DDP's averaging)."""
    devices, nodes = train.get("devices", 1), train.get("num_nodes", 1)
    if (isinstance(devices, int) and devices > 1) or (isinstance(nodes, int) and nodes > 1):
        return [
            f"{name} runs on one process only (train.devices=1): its per-task gradients bypass DDP's averaging; "
            "for a multi-process run set train.composition=[] (or loss_norm, task_embedding)"
        ]
    return []


def fsdp_problems(name: str, train: dict[str, Any], why: str) -> list[str]:
    """The message for a method that cannot work with ``train.strategy: fsdp``, and ``why``."""
    if train.get("strategy") == "fsdp":
        return [f"{name} does not work with train.strategy=fsdp ({why})"]
    return []


def require_task_parts(model: nn.Module, method: str) -> None:
    """ValueError unless the model's trunk family's ``encode_tokens`` takes ``task_parts`` (the tasks' own block
    parts, :class:`~lumina_core.model.task_parts.TaskBlockParts`), which it hands to ``run_blocks``; ``method``:
    the composition method that needs it."""
    import inspect

    trunk = model.trunk
    if "task_parts" not in inspect.signature(trunk.encode_tokens).parameters:
        raise ValueError(
            f"train.composition {method} needs a trunk family whose encode_tokens takes task_parts (and hands it "
            f"to run_blocks); model.family={trunk.config.family!r} ({type(trunk).__name__}) does not"
        )

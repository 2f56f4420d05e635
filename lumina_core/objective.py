"""The contract of a training objective (what ``OBJECTIVES`` holds): a loss on token batches, plus optional
trainable weights and an evaluation of its own.

One training step of a task calls, in order::

    targets = objective.targets(batch)             # from the collated items (None: the tokens are the target)
    result = objective.loss(model, task, tokens, cond, generator=gen, targets=targets)
    result.loss, result.stats                      # a LossResult; `loss, stats = ...` unpacks it too

An objective builds its result with ``LossResult.of(loss, **stats)``: the stats always hold the loss, and all
of them are detached from the graph.

Weights: an objective that needs parameters beyond the trunk and the task's adapter (a classifier head)
returns them from :meth:`Objective.make_head`; the run attaches the module to the model as
``model.heads[task]`` (:meth:`lumina_core.model.LuminaModel.add_head`), so it is optimised, averaged (EMA),
checkpointed (``model.heads.<task>.*``) and moved between devices with everything else. An objective keeps no
weights of its own: it is rebuilt from the recipe wherever a run is loaded.

Evaluation: a *generative* objective (flow matching) is evaluated by generating samples that the plugin
scores; any other objective evaluates held-out items itself with :meth:`Objective.evaluate`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from lumina_core.tokens import Condition, TokenBatch


class LossResult(NamedTuple):
    """What :meth:`Objective.loss` returns: the scalar ``loss`` to minimise (with its graph) and detached
    ``stats`` to log (``{"loss": ..., "t_mean": ...}``). A named tuple, so ``loss, stats = result`` works."""

    loss: Tensor
    stats: dict[str, Tensor]

    @classmethod
    def of(cls, loss: Tensor, **stats: Tensor) -> LossResult:
        """The record of ``loss`` with ``stats = {"loss": loss, **stats}``, every statistic detached (the one
        place an objective's bookkeeping lives: ``LossResult.of(loss, t_mean=t.mean())``)."""
        return cls(loss, {name: value.detach() for name, value in {"loss": loss, **stats}.items()})


class Objective(abc.ABC):
    """Base class of objectives (what ``OBJECTIVES`` holds); subclasses implement :meth:`loss` and override
    what else they need."""

    #: True: evaluated by generating samples for held-out conditions and scoring them with the plugin
    generative: bool = True

    def make_head(self, dim: int) -> nn.Module | None:
        """Trainable weights this objective reads on top of the trunk's hidden tokens of width ``dim``
        (``None``: none). Called once per task when the model is built."""
        return None

    def targets(self, batch: dict[str, list[Any]]) -> Tensor | None:
        """What the loss predicts, taken from a collated batch ``{"samples", "conditions", "meta"}``; None
        when the target comes from the tokens themselves (flow matching)."""
        return None

    @abc.abstractmethod
    def loss(
        self,
        model: Any,
        task: str,
        batch: TokenBatch,
        cond: Condition,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> LossResult:
        """Scalar loss and detached statistics for one task's token batch."""

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
        """Score held-out ``items`` without generating: ``(scalar metrics, details)``; details (a confusion
        matrix, ...) go to ``metrics.json`` only. Only non-generative objectives implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} is generative: it is evaluated by generating samples, not by evaluate()"
        )

"""The methods of a recipe's ``train.composition``, applied in order, as one object the run calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.training.composition.base import Composition


class CompositionChain:
    """``train.composition``'s methods in recipe order: draw weights and losses pass through each in turn, each
    prepares the model and sees the optimiser before it steps, and the one method that owns the backward (if
    any) computes the gradients."""

    def __init__(self, methods: Sequence[Composition] = ()) -> None:
        self.methods = list(methods)
        owners = [m.name for m in self.methods if m.owns_backward]
        if len(owners) > 1:
            raise ValueError(f"train.composition: at most one method may compute the gradients; got {owners}")
        self.gradient_method = next((m for m in self.methods if m.owns_backward), None)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.methods]

    @property
    def adapter_parts(self) -> list[str]:
        """The attributes the methods add to every task's adapter at an identity start (``Composition.adapter_parts``)."""
        return [part for m in self.methods for part in m.adapter_parts]

    def draw_weights(self, weights: dict[str, float], sizes: dict[str, int | None]) -> dict[str, float]:
        for m in self.methods:
            weights = m.draw_weights(dict(weights), sizes)
        return weights

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        for m in self.methods:
            m.prepare_model(model, tasks)

    def scale_losses(self, losses: dict[str, Tensor], statistics: dict[str, float]) -> dict[str, Tensor]:
        for m in self.methods:
            losses = m.scale_losses(losses, statistics)
        return losses

    def before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, tasks: Sequence[str], shared: Sequence[nn.Parameter]
    ) -> None:
        for m in self.methods:
            m.before_optimizer_step(optimizer, tasks, shared)

    def state_dict(self) -> dict[str, Any]:
        """``{"methods": [names], "state": [each method's state]}``."""
        return {"methods": self.names, "state": [m.state_dict() for m in self.methods]}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        saved = list(state.get("methods", []))
        if saved != self.names:
            raise ValueError(
                f"this checkpoint was trained with train.composition {saved} and the recipe now says {self.names}: "
                "resume with the composition the run was trained with, or start from its weights with "
                "train.init_from=<checkpoint>"
            )
        for m, s in zip(self.methods, state.get("state", []), strict=True):
            m.load_state_dict(s)


def composition_names(specs: Sequence[Any] | None) -> list[str]:
    """The method names of a ``train.composition`` list (bare names, ``{name, params}`` dicts or components)."""
    return [s if isinstance(s, str) else str(s.get("name") if isinstance(s, dict) else s.name) for s in specs or ()]


def build_composition(specs: Sequence[Any] | None) -> CompositionChain:
    """The chain of a recipe's ``train.composition`` (components, ``{name, params}`` dicts or bare names)."""
    from lumina_core.registry import COMPOSITIONS

    return CompositionChain(
        [COMPOSITIONS.build({"name": s} if isinstance(s, str) else s) for s in specs or ()]
    )


def composition_problems(
    specs: Sequence[Any], mixing: str, tasks: Sequence[str], train: dict[str, Any]
) -> list[str]:
    """What ``lumina config validate`` says about ``train.composition`` beyond names and parameters: each
    method's own conditions (its mixing mode, ...) and at most one method that computes the gradients."""
    from lumina_core.registry import COMPOSITIONS, RegistryError

    problems, owners = [], []
    for i, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else spec
        try:
            method = COMPOSITIONS.build(
                {"name": name, "params": dict(spec.get("params") or {})}
                if isinstance(spec, dict)
                else {"name": name}
            )
        except (RegistryError, TypeError):
            continue  # an unknown name or parameters the constructor does not take: the registered-names pass
        except ValueError as exc:  # parameters of the right names and types, but values the method refuses
            problems.append(f"train.composition.{i}: {exc}")
            continue
        problems += [f"train.composition.{i}: {p}" for p in method.problems(mixing, tasks, train)]
        if method.owns_backward:
            owners.append(name)
    if len(owners) > 1:
        problems.append(f"train.composition: at most one method may compute the gradients; got {owners}")
    return problems


def planned_draw_weights(cfg: Any) -> dict[str, float]:
    """The draw weights a run of recipe ``cfg`` will use under ``weighted`` mixing, before it starts (what
    ``LuminaLightningModule.task_draw_weights`` gives): the recipe's ``draw_weight`` through
    ``train.composition``; the training sets are built for their sizes only when a method draws by size."""
    from lumina_core.config.typed import typed_recipe

    recipe = typed_recipe(cfg)
    chain = build_composition(recipe.train.composition)
    weights = {t.name: float(t.draw_weight) for t in recipe.tasks}
    if all(type(m).draw_weights is Composition.draw_weights for m in chain.methods):
        return weights
    from lumina_core.data.contract import build_dataset

    sizes: dict[str, int | None] = {}
    for t in recipe.tasks:
        ds = build_dataset(t.data.name, dict(t.data.params), "train", dict(t.data.val_params))
        try:
            sizes[t.name] = len(ds)
        except TypeError:
            sizes[t.name] = None
    return chain.draw_weights(weights, sizes)

"""``shared_start``: tasks whose adapters have the same parameters (names and shapes) start from the same
adapter weights, so the trunk meets one embedding of their tokens rather than one random embedding per task.

A task's adapter turns its tokens into the trunk's width with its own ``x_embedder``, a Xavier-random linear map
(the rest of a fresh adapter is zero or nearly so: final layer, modulation, the N(0, 0.02) pad token). Two tasks
whose tokens mean the same (two datasets of one modality and patching, or one task composed with a copy of
itself) then enter the trunk along two unrelated random subspaces, and the trunk has to learn every feature once
for each. Measured on the shapes task composed with an exact copy of itself (``train.mixing: all``, 1000 steps,
plain sum, two seeds; docs/multitask.md): with independent adapters each copy ends at a training loss of
0.041-0.045, worse than the task alone at 1000 steps (0.036-0.037) although the trunk sees twice the data;
started from the same adapter weights the copies end at 0.032-0.034, better than alone, as twice the data
should give.

For every group of tasks whose adapters have identical parameter names and shapes, this method copies the first
task's adapter weights (recipe order) into the others once, when the model is built and before any checkpoint
or ``train.init_from`` is loaded; training then moves each task's adapter on its own. Tasks of different
modalities or token widths are left as they are (their adapters cannot be the same map), so the method does
nothing to a recipe without such a group and says so once. It keeps no state, works under either mixing, on
several processes (every rank builds the same model) and with FSDP (the copy is made before sharding).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition


def adapter_groups(model: nn.Module, tasks: Sequence[str]) -> list[list[str]]:
    """The tasks whose adapters have identical parameter names and shapes, in groups of two or more (each
    group in recipe order)."""
    groups: dict[tuple, list[str]] = {}
    for name in tasks:
        signature = tuple((k, tuple(p.shape)) for k, p in model.adapters[name].named_parameters())
        groups.setdefault(signature, []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def unshared_note(
    model: nn.Module, objectives: Mapping[str, str], methods: Sequence[str]
) -> str | None:
    """What a fresh run whose recipe leaves ``shared_start`` out is told when some of its tasks have same-shaped
    adapters *and the same objective* (``objectives``: task -> objective name, in recipe order): they start from
    independent random embeddings, the twin's measured cost. Tasks with other objectives (drawing and reading
    the same digits) are not named: there a shared start was not measured to pay. None when the recipe names the
    method or no such tasks exist."""
    if "shared_start" in methods:
        return None
    groups = []
    for group in adapter_groups(model, list(objectives)):
        by_objective: dict[str, list[str]] = {}
        for name in group:
            by_objective.setdefault(objectives[name], []).append(name)
        groups += [g for g in by_objective.values() if len(g) > 1]
    if not groups:
        return None
    named = "; ".join(" and ".join(g) for g in groups)
    return (
        f"note: tasks {named} have adapters of the same shapes and the same objective, and start from independent "
        "random weights. Measured on the shapes task beside an exact copy of itself, independent starts left each "
        f"copy below the task alone at equal steps; train.composition=[{', '.join([*methods, 'shared_start'])}] "
        "starts them from the same weights (docs/multitask.md, 'shared_start')"
    )


@COMPOSITIONS.register("shared_start")
class SharedStart(Composition):
    """Same-shaped task adapters start as copies of the first one's weights (see the module docstring)."""

    registered_name = "shared_start"

    def prepare_model(self, model: nn.Module, tasks: Sequence[str]) -> None:
        groups = adapter_groups(model, tasks)
        if not groups:
            warnings.warn(
                f"train.composition shared_start changes nothing here: no two of the tasks {list(tasks)} have "
                "adapters of the same shapes (same modality, token width and conditioning)",
                stacklevel=2,
            )
            return
        with torch.no_grad():
            for first, *others in groups:
                source = dict(model.adapters[first].named_parameters())
                for name in others:
                    for key, p in model.adapters[name].named_parameters():
                        p.copy_(source[key])

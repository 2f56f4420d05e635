"""How tasks share one trunk (``train.composition``): registered composition methods and their chain.

    plain           the weighted sum of the task losses (the baseline; also what [] means)
    loss_norm       each task's loss divided by its running mean
    grad_norm       each task's gradient divided by the running mean of its trunk gradient norm
    pcgrad          projecting conflicting task gradients on the trunk (train.mixing: all)
    task_embedding  a learned, zero-initialised vector per task added to the conditioning vector
    temperature     draw weights proportional to data size^(1/T) (train.mixing: weighted)
    task_moments    one set of AdamW moments per task on the trunk, used on that task's steps (weighted)
    shared_start    tasks with same-shaped adapters start from the same adapter weights
    task_modulation every task owns the adaLN modulation of every trunk block (the trunk's own frozen)
    task_lora       every task owns a low-rank update of every block projection (the shared weights still train)

See docs/multitask.md for what each does to a run and which one the shipped recipe uses (and why).
"""

from __future__ import annotations

from lumina_core.training.composition import (  # noqa: F401  (registers the methods)
    grad_norm,
    loss_norm,
    pcgrad,
    plain,
    shared_start,
    task_embedding,
    task_lora,
    task_modulation,
    task_moments,
    temperature,
)
from lumina_core.training.composition.base import Composition
from lumina_core.training.composition.chain import (
    CompositionChain,
    build_composition,
    composition_names,
    composition_problems,
    planned_draw_weights,
)

__all__ = [
    "Composition",
    "CompositionChain",
    "build_composition",
    "composition_names",
    "composition_problems",
    "planned_draw_weights",
]

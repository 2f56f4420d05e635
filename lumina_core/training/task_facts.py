"""What a recipe task is, read from its typed section alone: the one place task facts are derived.

    facts = TaskFacts.of(task_config)    # no plugin, no text encoder built: cheap enough for argument checks
    facts.generative                     # False for a classifier (its objective generates nothing)
    facts.condition_kind                 # "text", "class", "none" (or a plugin conditioner's own kind)
    facts.num_classes                    # a class table's number of classes, else None
    facts.sampling_defaults              # {"steps", "solver", "cfg_scale", "seed"} of the sampling section

A built :class:`~lumina_core.training.task.Task` answers the same questions as properties
(``task.generative``, ``task.condition_kind``, ...) through these, so ``lumina sample``'s argument checks,
``lumina serve``'s page, ``lumina predict`` and training never derive them differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TaskFacts", "build_objective", "condition_kind_of", "objective_generates"]


def build_objective(config: Any) -> Any:
    """The task's objective alone (cheap: no plugin, no text encoder), e.g. to ask whether it generates."""
    import lumina_core.flow  # noqa: F401  (registers objectives and time samplers)
    from lumina_core.registry import OBJECTIVES

    return OBJECTIVES.build(config.objective)


def objective_generates(objective: Any) -> bool:
    """True when ``objective`` generates (flow matching); an objective says otherwise with
    ``generative = False`` (a classifier)."""
    return bool(getattr(objective, "generative", True))


def condition_kind_of(config: Any) -> str:
    """The kind of condition a task's conditioner encodes, from its registered class (a class attribute:
    nothing is built)."""
    import lumina_core.conditioning  # noqa: F401  (registers the built-in conditioners)
    from lumina_core.registry import CONDITIONERS

    return str(getattr(CONDITIONERS.get(str(config.conditioning.encoder.name)), "kind", "none"))


@dataclass(frozen=True)
class TaskFacts:
    """The facts of one recipe task that commands check arguments against (see the module docstring)."""

    name: str
    modality: str
    generative: bool
    condition_kind: str
    num_classes: int | None
    sampling_defaults: dict[str, Any]

    @classmethod
    def of(cls, config: Any, objective: Any = None) -> TaskFacts:
        """The facts of the typed task section ``config``; ``objective``: the task's built objective (else one
        is built, which is cheap: no plugin, no encoder)."""
        if objective is None:
            objective = build_objective(config)
        kind = condition_kind_of(config)
        params = config.conditioning.encoder.params or {}
        num_classes = int(params["num_classes"]) if kind == "class" and "num_classes" in params else None
        s = config.sampling
        solver = s.solver if isinstance(s.solver, str) else s.solver.name
        defaults = {
            "steps": int(s.steps),
            "solver": solver,
            "cfg_scale": float(s.cfg_scale),
            "seed": int(s.seed),
        }
        return cls(
            str(config.name),
            str(config.modality.name),
            objective_generates(objective),
            kind,
            num_classes,
            defaults,
        )

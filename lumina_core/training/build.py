"""Build a run's parts from a recipe: plugins, conditioners, objectives, datasets and the LuminaModel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


def plain(node: Any) -> Any:
    """OmegaConf containers to plain Python (lists and dicts), anything else unchanged."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def as_recipe(cfg: Any):
    """A DictConfig merged over the schema (accepts a DictConfig, a dict or a RecipeConfig)."""
    from omegaconf import OmegaConf

    from lumina_core.config.schema import RecipeConfig

    base = OmegaConf.structured(RecipeConfig)
    return OmegaConf.merge(base, cfg)


@dataclass
class RunParts:
    """Everything a run needs besides the trainer: one plugin, conditioner and objective per task."""

    model: nn.Module
    plugins: dict[str, Any]
    conditioners: dict[str, nn.Module]
    objectives: dict[str, Any]
    tasks: list[Any] = field(default_factory=list)  # the task config nodes, in recipe order


def model_config(cfg: Any, conditioners: dict[str, Any]):
    """``cfg.model`` -> NextDiTConfig; ``context_dim`` None takes the conditioners' width."""
    from lumina_core.model import NextDiTConfig

    values = {k: v for k, v in plain(cfg.model).items() if v is not None}
    if values.get("context_dim") is None:
        dims = {name: c.dim for name, c in conditioners.items() if getattr(c, "dim", None) is not None}
        if len(set(dims.values())) > 1:
            raise ValueError(
                f"tasks' conditioners have different widths {dims}; one trunk has one context_dim - "
                "give the conditioners the same dim or set model.context_dim and project"
            )
        if dims:
            values["context_dim"] = next(iter(dims.values()))
    return NextDiTConfig.from_dict(values)


def build_conditioner(task: Any) -> nn.Module:
    import lumina_core.conditioning  # noqa: F401  (registers the built-in conditioners)
    from lumina_core.registry import CONDITIONERS

    enc = CONDITIONERS.build(plain(task.conditioning.encoder))
    if task.conditioning.cache and not getattr(enc, "trainable", False):
        from lumina_core.conditioning import CachedConditioner

        enc = CachedConditioner(enc)
    return enc


def build_parts(cfg: Any) -> RunParts:
    """Plugins, conditioners, objectives and a freshly initialised LuminaModel for ``cfg`` (a recipe)."""
    import lumina_core.flow  # noqa: F401  (registers objectives and time samplers)
    from lumina_core.model import LuminaModel
    from lumina_core.registry import MODALITIES, OBJECTIVES

    if not cfg.tasks:
        raise ValueError("the recipe has no tasks; add at least one entry under 'tasks:'")
    names = [t.name for t in cfg.tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique; got {names}")
    plugins = {t.name: MODALITIES.build(plain(t.modality)) for t in cfg.tasks}
    conditioners = {t.name: build_conditioner(t) for t in cfg.tasks}
    objectives = {t.name: OBJECTIVES.build(plain(t.objective)) for t in cfg.tasks}
    model = LuminaModel(model_config(cfg, conditioners), {n: p.adapter_spec() for n, p in plugins.items()})
    add_objective_heads(model, objectives)
    return RunParts(model, plugins, conditioners, objectives, list(cfg.tasks))


def build_objective(task: Any) -> Any:
    """The task's objective, rebuilt from the recipe (its weights, if any, live in ``model.heads``)."""
    import lumina_core.flow  # noqa: F401  (registers objectives and time samplers)
    from lumina_core.registry import OBJECTIVES

    return OBJECTIVES.build(plain(task.objective))


def add_objective_heads(model: Any, objectives: dict[str, Any]) -> None:
    """Attach each objective's head (``Objective.make_head``; flow matching has none) as ``model.heads[task]``."""
    from lumina_core.objective import Objective

    for name, objective in objectives.items():
        head = objective.make_head(model.config.dim) if isinstance(objective, Objective) else None
        if head is not None:
            model.add_head(name, head)


def build_dataset(task: Any, split: str, conditioner: Any = None):
    """The task's dataset for ``split`` (see :func:`lumina_core.data.build_dataset`: the val split merges
    ``val_params`` over ``params``). With ``conditioner``, a dataset whose declared condition kind the
    conditioner does not encode is refused (ValueError)."""
    from lumina_core.data.contract import build_dataset as build
    from lumina_core.data.contract import check_condition_kinds, condition_kind_of

    ds = build(str(task.data.name), plain(task.data.params), split, plain(task.data.val_params))
    if conditioner is not None:
        problem = check_condition_kinds(
            condition_kind_of(ds), getattr(conditioner, "kind", None), f"task {task.name!r}"
        )
        if problem:
            raise ValueError(problem)
    return ds


def sampling_kwargs(task: Any) -> dict[str, Any]:
    """``generate`` keyword arguments from a task's ``sampling`` section."""
    s = task.sampling
    return {
        "steps": int(s.steps),
        "solver": s.solver,
        "grid": plain(s.grid),
        "cfg_scale": float(s.cfg_scale),
        "cfg_channels": s.cfg_channels,
        "rope_scaling": plain(s.rope_scaling),
        "context_drop": plain(s.get("context_drop")),
        "seed": int(s.seed),
        "precision": str(s.get("precision", "fp32")),
    }


def trainable_modules(model: nn.Module, conditioners: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """The modules whose weights a checkpoint holds, by key prefix: the LuminaModel (``model``) and every
    trainable conditioner (``conditioners.<task>``); frozen pretrained encoders are left out."""
    mods: dict[str, nn.Module] = {"model": model}
    for name, enc in conditioners.items():
        if getattr(enc, "trainable", False):
            mods[f"conditioners.{name}"] = enc
    return mods


def load_trainable(mods: dict[str, nn.Module], weights: dict[str, Any]) -> None:
    """Load a checkpoint's flat weights into :func:`trainable_modules` (strict: every key must match)."""
    known = set()
    for prefix, mod in mods.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        known |= {f"{prefix}.{k}" for k in sub}
        mod.load_state_dict(sub, strict=True)
    extra = sorted(set(weights) - known)
    if extra:
        raise ValueError(f"checkpoint has weights for modules this recipe does not build: {extra[:5]}")


def resolve_device(device: str) -> str:
    """``run.device`` -> a torch device string (``auto``: the first GPU if there is one, else CPU)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device

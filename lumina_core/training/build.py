"""Build a run from a typed recipe: its tasks (:class:`~lumina_core.training.task.Task`) and one LuminaModel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumina_core.config.typed import as_dict, typed_recipe
from lumina_core.training.task import Task, build_task

if TYPE_CHECKING:
    from torch import nn

    from lumina_core.config.schema import RecipeConfig


@dataclass
class RunParts:
    """A built run: the model (shared trunk, one adapter and optional head per task) and its tasks."""

    model: nn.Module
    tasks: dict[str, Task]  # in recipe order
    checkpoint: Path | None = None  # the checkpoint the weights came from (load_run)
    composition: Any = None  # the recipe's train.composition (a CompositionChain), already applied to the model

    def task(self, name: str | None = None) -> Task:
        """The task called ``name`` (None: the recipe's first)."""
        if name is None:
            return next(iter(self.tasks.values()))
        if name not in self.tasks:
            raise ValueError(f"unknown task {name!r}; tasks: {list(self.tasks)}")
        return self.tasks[name]

    @property
    def conditioners(self) -> dict[str, nn.Module]:
        return {name: t.conditioner for name, t in self.tasks.items()}


def model_config(recipe: RecipeConfig | Any, tasks: dict[str, Task]):
    """``recipe.model`` -> NextDiTConfig; ``context_dim`` None takes the first conditioned task's width (the
    other tasks' conditioners are projected to it by their adapters)."""
    from lumina_core.model import NextDiTConfig

    values = {k: v for k, v in as_dict(typed_recipe(recipe).model).items() if v is not None}
    if values.get("context_dim") is None:
        widths = [t.context_dim for t in tasks.values() if t.context_dim is not None]
        if widths:
            values["context_dim"] = widths[0]
    return NextDiTConfig.from_dict(values)


def build_run(cfg: Any) -> RunParts:
    """The tasks and a freshly initialised LuminaModel for a recipe (any form :func:`typed_recipe` takes)."""
    from lumina_core.model import LuminaModel

    recipe = typed_recipe(cfg)
    if not recipe.tasks:
        raise ValueError("the recipe has no tasks; add at least one entry under 'tasks:'")
    names = [t.name for t in recipe.tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique; got {names}")
    tasks = {t.name: build_task(t) for t in recipe.tasks}
    model = LuminaModel(
        model_config(recipe, tasks),
        {n: t.plugin.adapter_spec().with_learn_sigma(t.config.learn_sigma) for n, t in tasks.items()},
        {n: t.context_dim for n, t in tasks.items()},
    )
    add_objective_heads(model, {n: t.objective for n, t in tasks.items()})
    from lumina_core.training.composition import build_composition

    composition = build_composition(recipe.train.composition)
    composition.prepare_model(model, names)  # e.g. task embeddings: the same model for train, eval and sample
    return RunParts(model, tasks, composition=composition)


def add_objective_heads(model: Any, objectives: dict[str, Any]) -> None:
    """Attach each task's objective's head (``Objective.make_head``; flow matching has none) as
    ``model.heads[task]``."""
    from lumina_core.objective import Objective

    for name, objective in objectives.items():
        head = objective.make_head(model.config.dim) if isinstance(objective, Objective) else None
        if head is not None:
            model.add_head(name, head)


def trainable_modules(model: nn.Module, conditioners: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """The modules whose weights a checkpoint holds, by key prefix: the LuminaModel (``model``) and every
    trainable conditioner (``conditioners.<task>``); frozen pretrained encoders are left out."""
    mods: dict[str, nn.Module] = {"model": model}
    for name, enc in conditioners.items():
        if getattr(enc, "trainable", False):
            mods[f"conditioners.{name}"] = enc
    return mods


def is_lora_key(key: str) -> bool:
    """A LoRA adapter factor (peft's ``lora_A`` / ``lora_B``)."""
    return ".lora_A." in key or ".lora_B." in key


def trainable_state(mods: dict[str, nn.Module], lora: bool = False) -> dict[str, Any]:
    """Flat ``{prefix.name: tensor}`` of :func:`trainable_modules`' live parameters and persistent buffers; with
    ``lora`` what the LoRA run trains: the adapter factors and the parameters ``train.lora.train_also`` keeps
    trainable (the frozen base is not saved with a LoRA run)."""
    out = {}
    for prefix, mod in mods.items():
        for k, v in mod.state_dict(keep_vars=True).items():
            if not lora or is_lora_key(k) or (getattr(v, "requires_grad", False)):
                out[f"{prefix}.{k}"] = v
    return out


def load_trainable(mods: dict[str, nn.Module], weights: dict[str, Any], lora: bool = False) -> None:
    """Load a checkpoint's flat weights into :func:`trainable_modules` (strict: every key must match; with
    ``lora`` every adapter factor, the base weights left as they are)."""
    if lora:
        expected = trainable_state(mods, lora=True)
        missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        if missing or extra:
            raise ValueError(
                f"the LoRA checkpoint does not fit the adapter this recipe builds: missing {missing[:5]}, "
                f"unexpected {extra[:5]} (check train.lora.rank, targets and train_also)"
            )
    known = set()
    for prefix, mod in mods.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        known |= {f"{prefix}.{k}" for k in sub}
        mod.load_state_dict(sub, strict=not lora)
    extra = sorted(set(weights) - known)
    if extra:
        raise ValueError(f"checkpoint has weights for modules this recipe does not build: {extra[:5]}")


def resolve_device(device: str) -> str:
    """``run.device`` -> a torch device string (``auto``: the first GPU if there is one, else CPU); a device
    this machine lacks raises :class:`~lumina_core.config.devices.DeviceUnavailable` (one paragraph)."""
    import torch

    from lumina_core.config.devices import require_device

    require_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device

"""Recipe validation: every problem at once, as ``"path: message"`` strings.

Three passes over the recipe (a plain tree of dicts and lists, with the schema's defaults filled in):

1. *structure*, against the dataclasses of :mod:`lumina_core.config.schema`: unknown keys (with the closest
   known key as a suggestion), wrong types, missing required values (``???``), interpolations that do not
   resolve, and a few value ranges (at least one task, unique task names, probabilities in [0, 1], ...);
2. *registered names*: the schema is walked field by field; every field declared to hold components of a
   registry (:func:`lumina_core.config.schema.registered`: modality, objective, conditioner, solver, time
   grid, RoPE scaling, composition method) must name something that registry knows, and its ``params`` are
   bound to the registered constructor's signature (missing required parameters, unknown ones with the
   closest accepted one as a suggestion, wrong types), recursively into the parameters a component declares
   as components (``nested_components``); a field declared to build a class from a mapping
   (:func:`~lumina_core.config.schema.builds`: ``context_drop``) is checked against that class; then the
   cross-field rules (a dataset of the task's modality, a conditioner kind the modality accepts, composition
   methods that fit the mixing);
3. with ``check_build``, what building the run would catch (:mod:`.buildcheck`).

The generic checkers (a tree against dataclass types, keyword arguments against a signature) are
:mod:`.typecheck`; this module holds the recipe's rules.

Paths are dotted and use list indices the way overrides do: ``tasks.0.data.batch_size``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import typing
from collections.abc import Mapping
from typing import Any

from lumina_core.config.schema import MIXING_MODES, STRATEGIES, Component, RecipeConfig
from lumina_core.config.typecheck import (
    MISSING,
    _annotation_types,
    _check_structure,
    _join,
    _resolve,
    _to_plain,
    _with_defaults,
    accepted_params,
    check_params,
)


# ------------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------------
def validate_recipe(cfg: Any, check_registry: bool = True, check_build: bool = True) -> list[str]:
    """Every problem of a recipe (OmegaConf node, dict, or :class:`RecipeConfig`); empty when valid.

    Args:
        cfg: the recipe, raw (as written) or already merged with the schema.
        check_registry: also check registered names and component parameters (imports the plugins that
            the recipe names, on first use).
        check_build: also build what is cheap to build, as a run would (:mod:`.buildcheck`).
    """
    tree = _to_plain(cfg)
    problems: list[str] = []
    if not isinstance(tree, dict):
        return [f"<recipe>: expected a mapping with run, model, tasks, train; got {type(tree).__name__}"]
    from lumina_core.config.typed import normalise_components

    merged = _with_defaults(RecipeConfig, normalise_components(tree))
    resolved = _resolve(merged, problems)  # type-check values as a run will see them
    _check_structure(resolved, RecipeConfig, "", problems)
    _check_values(resolved, problems)
    if check_registry:
        _check_registered(resolved, problems)
        if check_build:
            from lumina_core.config.buildcheck import check_buildable

            check_buildable(resolved, problems)  # parts with unknown names are passed over there
    return problems


# ------------------------------------------------------------------------------------------------------
# value ranges and cross-field rules
# ------------------------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_values(tree: dict, problems: list[str]) -> None:
    def rule(path: str, value: Any, ok: typing.Callable[[float], bool], want: str) -> None:
        v = _num(value)
        if v is not None and not ok(v):
            problems.append(f"{path}: must be {want}, got {value!r}")

    tasks = tree.get("tasks")
    if isinstance(tasks, list):
        if not tasks:
            problems.append("tasks: a recipe needs at least one task (a single-task recipe is a list of one)")
        seen: dict[str, int] = {}
        for i, task in enumerate(tasks):
            if not isinstance(task, dict):
                continue
            name = task.get("name")
            if isinstance(name, str) and name != MISSING:
                if name in seen:
                    problems.append(
                        f"tasks.{i}.name: task name {name!r} is already used by tasks.{seen[name]}"
                    )
                seen.setdefault(name, i)
            rule(f"tasks.{i}.loss_weight", task.get("loss_weight"), lambda v: v >= 0, "at least 0")
            rule(f"tasks.{i}.draw_weight", task.get("draw_weight"), lambda v: v >= 0, "at least 0")
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            rule(f"tasks.{i}.data.batch_size", data.get("batch_size"), lambda v: v >= 1, "at least 1")
            rule(f"tasks.{i}.data.num_workers", data.get("num_workers"), lambda v: v >= 0, "at least 0")
            cond = task.get("conditioning") if isinstance(task.get("conditioning"), dict) else {}
            rule(
                f"tasks.{i}.conditioning.drop_prob", cond.get("drop_prob"), lambda v: 0 <= v <= 1, "in [0, 1]"
            )
            samp = task.get("sampling") if isinstance(task.get("sampling"), dict) else {}
            rule(f"tasks.{i}.sampling.steps", samp.get("steps"), lambda v: v >= 1, "at least 1")
            rule(
                f"tasks.{i}.sampling.cfg_trunc", samp.get("cfg_trunc"), lambda v: 0 <= v <= 1,
                "in [0, 1] (the flow time from which guidance stops; 1: never)",
            )  # fmt: skip
            rule(
                f"tasks.{i}.sampling.cfg_renorm", samp.get("cfg_renorm"), lambda v: v > 0,
                "greater than 0 (or null: no renormalisation)",
            )  # fmt: skip
            if isinstance(samp.get("precision"), str) and samp["precision"] not in ("fp32", "bf16", "auto"):
                problems.append(
                    f"tasks.{i}.sampling.precision: expected 'fp32', 'bf16' or 'auto', got {samp['precision']!r}"
                )
            ev = task.get("eval") if isinstance(task.get("eval"), dict) else {}
            rule(f"tasks.{i}.eval.num_samples", ev.get("num_samples"), lambda v: v >= 1, "at least 1 (items scored by `lumina eval`)")
            rule(f"tasks.{i}.eval.batch_size", ev.get("batch_size"), lambda v: v >= 1, "at least 1")
            sweep = ev.get("sweep")
            for param, values in (sweep.items() if isinstance(sweep, dict) else ()):
                if not isinstance(values, list) or not values:
                    problems.append(
                        f"tasks.{i}.eval.sweep.{param}: must be a non-empty list of values, got {values!r}"
                    )
    train = tree.get("train") if isinstance(tree.get("train"), dict) else {}
    _check_mixing(tasks if isinstance(tasks, list) else [], train, problems)
    rule("train.max_steps", train.get("max_steps"), lambda v: v >= 0, "at least 0")
    rule("train.devices", train.get("devices"), lambda v: v >= 1, "at least 1")
    rule("train.num_nodes", train.get("num_nodes"), lambda v: v >= 1, "at least 1")
    strategy = train.get("strategy")
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        problems.append(f"train.strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    rule("train.lr", train.get("lr"), lambda v: v > 0, "positive")
    rule("train.weight_decay", train.get("weight_decay"), lambda v: v >= 0, "at least 0")
    rule("train.warmup_steps", train.get("warmup_steps"), lambda v: v >= 0, "at least 0")
    rule("train.grad_clip", train.get("grad_clip"), lambda v: v >= 0, "at least 0 (0 disables clipping)")
    rule(
        "train.ema_decay",
        train.get("ema_decay"),
        lambda v: 0 <= v < 1,
        "in [0, 1) (an EMA with decay 1 never moves)",
    )
    rule("train.max_consecutive_skips", train.get("max_consecutive_skips"), lambda v: v >= 0, "at least 0")
    rule("train.max_skipped_steps", train.get("max_skipped_steps"), lambda v: v >= 0, "at least 0")
    rule("train.log_every", train.get("log_every"), lambda v: v >= 1, "at least 1")
    rule("train.diagnostics_every", train.get("diagnostics_every"), lambda v: v >= 0, "at least 0 (0: off)")
    rule("train.ckpt_every", train.get("ckpt_every"), lambda v: v >= 0, "at least 0")
    rule("train.preview_every", train.get("preview_every"), lambda v: v >= 0, "at least 0 (0: at the end only)")
    rule("train.threads", train.get("threads"), lambda v: v >= 1, "at least 1 (or null: torch's default)")
    sched = train.get("lr_schedule")
    if isinstance(sched, str) and sched not in ("constant", "cosine"):
        problems.append(f"train.lr_schedule: expected 'constant' or 'cosine', got {sched!r}")
    model = tree.get("model") if isinstance(tree.get("model"), dict) else {}
    for key in ("dim", "n_layers", "n_heads", "n_kv_heads", "context_dim"):
        rule(f"model.{key}", model.get(key), lambda v: v >= 1, "at least 1")


def _check_mixing(tasks: list, train: dict, problems: list[str]) -> None:
    """``train.mixing`` names a mode; the weights it reads can be drawn from (>= 0, not all zero)."""
    mode = train.get("mixing")
    if isinstance(mode, str) and mode not in MIXING_MODES:
        hint = difflib.get_close_matches(mode, MIXING_MODES, n=1)
        problems.append(
            f"train.mixing: expected one of {', '.join(MIXING_MODES)}, got {mode!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    tasks = [t for t in tasks if isinstance(t, dict)]
    for key, when in (("loss_weight", "every mode"), ("draw_weight", "train.mixing=weighted")):
        if key == "draw_weight" and mode != "weighted":
            continue
        values = [_num(t.get(key, 1.0)) for t in tasks]
        if values and all(v is not None for v in values) and all(v >= 0 for v in values) and sum(values) == 0:
            effect = "no task is ever drawn" if key == "draw_weight" else "nothing is learned"
            problems.append(
                f"tasks.*.{key}: all {len(values)} task(s) have {key} 0, so {effect} ({when}); "
                f"give at least one task a positive {key}"
            )


# ------------------------------------------------------------------------------------------------------
# pass 2: registered names and constructor parameters
# ------------------------------------------------------------------------------------------------------
def _registries() -> Any:
    from lumina_core import registry

    return registry


def _lookup(registry: Any, name: Any, path: str, problems: list[str]) -> Any:
    """The registered object, or None after recording why not."""
    from lumina_core.registry import LIST_COMMAND, RegistryError, UnknownNameError

    if not isinstance(name, str) or name == MISSING:
        return None  # already reported by the structure pass
    try:
        return registry.get(name)
    except UnknownNameError:
        close = registry.suggest(name)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(registry.names()) or "(none)"
        problems.append(
            f"{path}: unknown {registry.kind} {name!r}{hint} (known: {known}; run `{LIST_COMMAND}`)"
        )
    except RegistryError as exc:  # a broken or incompatible plugin
        problems.append(f"{path}: {exc}")
    return None


def _check_component(node: Any, registry: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(node, dict):
        return None
    obj = _lookup(registry, node.get("name"), _join(path, "name"), problems)
    if obj is None:
        return None
    params = node.get("params") or {}
    name = str(node.get("name"))
    check_params(_params_of(registry, name, obj), params, _join(path, "params"), problems, f"{registry.kind} {name!r}")
    _check_nested(registry, name, params, _join(path, "params"), problems)
    return obj


def _params_of(registry: Any, name: str, obj: Any) -> Any:
    """What a node's ``params`` are checked against: the registered object, or where the registry's base class
    declares settings every component of the kind shares (a RoPE scaling's ``scale``...), the registry's
    signature with them, the constructor's own string annotations resolved by :func:`typing.get_type_hints`
    in the module that defines it (the shared ones come resolved; nothing is evaluated here)."""
    if not getattr(registry.base_class(), "shared_parameters", ()):
        return obj
    hints = _annotation_types(obj)
    signature = registry.signature(name)
    params = [
        p.replace(annotation=hints.get(p.name, p.empty)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    return signature.replace(parameters=params)


def _check_nested(registry: Any, name: str, params: Any, path: str, problems: list[str]) -> None:
    """The parameters the component declares as components themselves (``nested_components``)."""
    if not isinstance(params, Mapping):
        return
    from lumina_core.registry import RegistryError

    try:
        nested = registry.nested(name)
    except RegistryError as exc:
        problems.append(f"{path}: {exc}")
        return
    for key, inner in nested.items():
        value = params.get(key)
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and "name" in value:
            _check_component(value, inner, _join(path, key), problems)


def _check_registered(tree: dict, problems: list[str]) -> None:
    before = len(problems)
    _check_registered_names(tree, problems)
    if any(": unknown " in p for p in problems[before:]):  # why a name may be unknown
        from lumina_core.registry import CORE_DISTRIBUTION, core_installed, plugin_entries

        for entry in plugin_entries().values():
            if entry.status == "broken":
                problems.append(f"plugins.{entry.name}: {entry.error}")
        if not core_installed():
            problems.append(
                f"plugins: the {CORE_DISTRIBUTION!r} distribution is not installed, so the built-in modalities "
                "have no entry points; run `pip install -e .` in the repository"
            )


def _check_composition(tree: dict, found: dict[str, Any], problems: list[str]) -> None:
    """``train.composition`` (its methods already checked as components, ``found``): each usable with the
    recipe's mixing and strategy (PCGrad needs ``mixing: all``, temperature draws need ``weighted``), one
    gradient method."""
    train = tree.get("train") if isinstance(tree.get("train"), dict) else {}
    specs = train.get("composition")
    if not isinstance(specs, list) or not specs:
        return
    if any(found.get(f"train.composition.{i}") is None for i in range(len(specs))) or any(
        p.startswith("train.composition") for p in problems
    ):
        return
    from lumina_core.training.composition import composition_problems

    tasks = tree.get("tasks") if isinstance(tree.get("tasks"), list) else []
    names = [t.get("name") for t in tasks if isinstance(t, dict)]
    problems += composition_problems(specs, str(train.get("mixing")), names, train)


def _check_registered_names(tree: dict, problems: list[str]) -> None:
    _check_model(tree.get("model"), problems)
    found: dict[str, Any] = {}
    _walk_components(tree, RecipeConfig, "", problems, found)
    _check_composition(tree, found, problems)
    tasks = tree.get("tasks")
    if not isinstance(tasks, list):
        return
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        base = f"tasks.{i}"
        plugin = found.get(f"{base}.modality")
        modality_node = task.get("modality")
        modality_name = modality_node.get("name") if isinstance(modality_node, dict) else None
        _check_dataset(task, plugin, modality_name, base, problems)
        encoder = found.get(f"{base}.conditioning.encoder")
        cond = task.get("conditioning")
        _check_condition_kind(plugin, encoder, modality_name, cond, f"{base}.conditioning.encoder", problems)


def _walk_components(tree: Any, cls: type, path: str, problems: list[str], found: dict[str, Any]) -> None:
    """Check every component node of ``tree`` against the schema dataclass ``cls``, recursively: a field
    declared :func:`~lumina_core.config.schema.registered` holds components of that registry (one, a list of
    them, or None), a field declared :func:`~lumina_core.config.schema.builds` a mapping of a class's
    keyword arguments; nested dataclasses (and lists of them) are walked. ``found`` maps each component's
    path to its registered object (for the cross-field rules)."""
    if not isinstance(tree, dict):
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        node, where = tree.get(f.name), _join(path, f.name)
        if "registry" in f.metadata:
            registry = getattr(_registries(), f.metadata["registry"])
            items = [(f"{where}.{k}", item) for k, item in enumerate(node)] if isinstance(node, list) else [(where, node)]
            for at, item in items:
                found[at] = _check_component(item, registry, at, problems)
        elif "builds" in f.metadata:
            _check_built(node, f.metadata["builds"], where, f.name, problems)
        else:
            for inner in _dataclasses_in(hints[f.name]):
                if isinstance(node, list):
                    for k, item in enumerate(node):
                        _walk_components(item, inner, f"{where}.{k}", problems, found)
                else:
                    _walk_components(node, inner, where, problems, found)


def _dataclasses_in(tp: Any) -> list[type]:
    """The schema dataclasses a field's type holds: ``X``, ``X | None``, ``list[X]``."""
    out = []
    for arg in typing.get_args(tp) or (tp,):
        if typing.get_origin(arg) is list and typing.get_args(arg):
            arg = typing.get_args(arg)[0]
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            out.append(arg)
    return out


def _check_built(node: Any, target: str, path: str, what: str, problems: list[str]) -> None:
    """A mapping of the keyword arguments of ``target`` (``"module:Class"``): its parameters against the class's
    signature, then the class built from it (``Class.build(node)`` where it has one) to check the values."""
    if not isinstance(node, Mapping):
        return  # None (off), or reported by the structure pass
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError:  # the part is not importable here: nothing to check against
        return
    before = len(problems)
    check_params(cls, node, path, problems, what)
    if len(problems) == before:
        try:
            cls.build(node) if hasattr(cls, "build") else cls(**node)
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}: {exc}")


def _check_dataset(task: dict, plugin: Any, modality_name: Any, base: str, problems: list[str]) -> None:
    """``data``: a registered dataset, its ``params`` and ``val_params`` and ``eval.sweep`` values against its
    constructor, and samples of the task's modality."""
    data = task.get("data")
    if not isinstance(data, dict):
        return
    reg = _registries()
    dataset = _lookup(reg.DATASETS, data.get("name"), f"{base}.data.name", problems)
    if dataset is None:
        return
    what = f"dataset {data.get('name')!r}"
    check_params(dataset, data.get("params") or {}, f"{base}.data.params", problems, what)
    check_params(dataset, data.get("val_params") or {}, f"{base}.data.val_params", problems, what, False)
    sweep = (task.get("eval") or {}).get("sweep") or {}  # {param: [values]}: each value a val param
    if isinstance(sweep, dict):
        swept = {k: v[0] for k, v in sweep.items() if isinstance(v, list) and v}
        check_params(dataset, swept, f"{base}.eval.sweep", problems, what, complete=False)
    owner = getattr(dataset, "modality", None)
    if plugin is not None and isinstance(owner, str) and owner != modality_name:
        problems.append(
            f"{base}.data.name: dataset {data.get('name')!r} yields {owner!r} samples, "
            f"but the task's modality is {modality_name!r}"
        )


def _check_condition_kind(
    plugin: Any, encoder: Any, modality: Any, cond: Any, path: str, problems: list[str]
) -> None:
    """A conditioner whose class declares ``kind`` must give a condition the modality accepts."""
    accepts = getattr(plugin, "conditions", None)
    kind = getattr(encoder, "kind", None)
    if not isinstance(kind, str) or not isinstance(accepts, frozenset | set | tuple | list):
        return
    if kind not in accepts:
        name = cond.get("encoder", {}).get("name") if isinstance(cond, dict) else None
        problems.append(
            f"{path}: conditioner {name!r} gives {kind!r} conditions, but modality {modality!r} accepts "
            f"{', '.join(sorted(accepts))}"
        )


def _check_model(model: Any, problems: list[str]) -> None:
    if not isinstance(model, dict):
        return
    preset = model.get("preset")
    if not isinstance(preset, str):
        return
    try:
        from lumina_core.model import PRESETS
    except ImportError:  # the trunk is not importable here: nothing to check against
        return
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, list(PRESETS), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        problems.append(f"model.preset: unknown preset {preset!r}{hint} (known: {', '.join(PRESETS)})")


__all__ = ["validate_recipe", "check_params", "accepted_params", "Component"]

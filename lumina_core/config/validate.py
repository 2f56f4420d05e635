"""Recipe validation: every problem at once, as ``"path: message"`` strings.

Three passes over the recipe (a plain tree of dicts and lists, with the schema's defaults filled in):

1. *structure*, against the dataclasses of :mod:`lumina_core.config.schema`: unknown keys (with the closest
   known key as a suggestion), wrong types, missing required values (``???``), interpolations that do not
   resolve, and a few value ranges (at least one task, unique task names, probabilities in [0, 1], ...);
2. *registered names*: every component (modality, dataset, objective, conditioner, solver, time grid, time
   sampler) must name something the registry knows, and its ``params`` are bound to the registered
   constructor's signature (missing required parameters, unknown ones with the closest accepted one as a
   suggestion, wrong types), recursively into the parameters a component declares as components
   (``nested_components``);
3. with ``check_build``, what building the run would catch (:mod:`.buildcheck`).

The generic checkers (a tree against dataclass types, keyword arguments against a signature) are
:mod:`.typecheck`; this module holds the recipe's rules.

Paths are dotted and use list indices the way overrides do: ``tasks.0.data.batch_size``.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import sys
import typing
from collections.abc import Mapping
from typing import Any

from lumina_core.config.schema import MIXING_MODES, STRATEGIES, Component, RecipeConfig
from lumina_core.config.typecheck import (
    MISSING,
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
    check_params(obj, params, _join(path, "params"), problems, f"{registry.kind} {node.get('name')!r}")
    _check_nested(registry, str(node.get("name")), params, _join(path, "params"), problems)
    return obj


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


def _check_composition(tree: dict, problems: list[str]) -> None:
    """``train.composition``: registered methods with valid parameters, each usable with the recipe's mixing
    and strategy (PCGrad needs ``mixing: all``, temperature draws need ``weighted``), one gradient method."""
    train = tree.get("train") if isinstance(tree.get("train"), dict) else {}
    specs = train.get("composition")
    if not isinstance(specs, list) or not specs:
        return
    reg = _registries()
    before = len(problems)
    for i, spec in enumerate(specs):
        _check_component(spec, reg.COMPOSITIONS, f"train.composition.{i}", problems)
    if len(problems) > before:
        return
    from lumina_core.training.composition import composition_problems

    tasks = tree.get("tasks") if isinstance(tree.get("tasks"), list) else []
    names = [t.get("name") for t in tasks if isinstance(t, dict)]
    problems += composition_problems(specs, str(train.get("mixing")), names, train)


def _check_registered_names(tree: dict, problems: list[str]) -> None:
    reg = _registries()
    _check_model(tree.get("model"), problems)
    _check_composition(tree, problems)
    tasks = tree.get("tasks")
    if not isinstance(tasks, list):
        return
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        base = f"tasks.{i}"
        modality_node = task.get("modality")
        plugin = _check_component(modality_node, reg.MODALITIES, f"{base}.modality", problems)
        modality_name = modality_node.get("name") if isinstance(modality_node, dict) else None
        data = task.get("data")
        if isinstance(data, dict):
            dataset = _lookup(reg.DATASETS, data.get("name"), f"{base}.data.name", problems)
            if dataset is not None:
                what = f"dataset {data.get('name')!r}"
                check_params(dataset, data.get("params") or {}, f"{base}.data.params", problems, what)
                check_params(
                    dataset, data.get("val_params") or {}, f"{base}.data.val_params", problems, what, False
                )
                sweep = (task.get("eval") or {}).get(
                    "sweep"
                ) or {}  # {param: [values]}: each value a val param
                if isinstance(sweep, dict):
                    swept = {k: v[0] for k, v in sweep.items() if isinstance(v, list) and v}
                    check_params(dataset, swept, f"{base}.eval.sweep", problems, what, complete=False)
                owner = getattr(dataset, "modality", None)
                if plugin is not None and isinstance(owner, str) and owner != modality_name:
                    problems.append(
                        f"{base}.data.name: dataset {data.get('name')!r} yields {owner!r} samples, "
                        f"but the task's modality is {modality_name!r}"
                    )
        _check_component(task.get("objective"), reg.OBJECTIVES, f"{base}.objective", problems)
        cond = task.get("conditioning")
        encoder = None
        if isinstance(cond, dict):
            encoder = _check_component(
                cond.get("encoder"), reg.CONDITIONERS, f"{base}.conditioning.encoder", problems
            )
        _check_condition_kind(plugin, encoder, modality_name, cond, f"{base}.conditioning.encoder", problems)
        samp = task.get("sampling")
        if isinstance(samp, dict):
            _check_component(samp.get("solver"), reg.SOLVERS, f"{base}.sampling.solver", problems)
            _check_component(samp.get("grid"), reg.TIME_GRIDS, f"{base}.sampling.grid", problems)
            _check_rope_scaling(samp.get("rope_scaling"), f"{base}.sampling.rope_scaling", problems)
            _check_context_drop(samp.get("context_drop"), f"{base}.sampling.context_drop", problems)


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


def _check_context_drop(node: Any, path: str, problems: list[str]) -> None:
    """``{factor, until, schedule, layers}``: the parameters of ``ContextDrop``, and their values."""
    if node is None:
        return
    try:
        from lumina_core.model.context_drop import ContextDrop
    except ImportError:
        return
    if not isinstance(node, Mapping):
        return  # reported by the structure pass
    before = len(problems)
    check_params(ContextDrop, node, path, problems, "context_drop")
    if len(problems) == before:
        try:
            ContextDrop.build(node)
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}: {exc}")


def _check_rope_scaling(node: Any, path: str, problems: list[str]) -> None:
    """``{name: <registered RoPE scaling>, params: {...}}``, checked against ``ROPE_SCALINGS.signature(name)``:
    the rule's own constructor parameters plus the settings every scaling shares (``shared_parameters``)."""
    if not isinstance(node, dict):
        return
    registry = _registries().ROPE_SCALINGS
    rule = _lookup(registry, node.get("name"), _join(path, "name"), problems)
    params = dict(node.get("params") or {})
    if "kind" in params:
        problems.append(
            f"{_join(path, 'params.kind')}: give the kind as rope_scaling.name, not as a parameter"
        )
        params.pop("kind")
    if rule is None:
        return
    name = str(node.get("name"))
    check_params(
        _signed(registry.signature(name), rule), params, _join(path, "params"), problems,
        f"RoPE scaling {name!r}", complete=False,
    )  # fmt: skip


def _signed(signature: inspect.Signature, owner: Any) -> Any:
    """A callable that ``check_params`` reads as having ``signature`` (a registry's view of a component,
    which may add shared parameters to the constructor's); string annotations are resolved in the modules
    of ``owner`` and its bases (those that do not resolve are left unchecked)."""
    namespace: dict[str, Any] = {}
    for cls in reversed(inspect.getmro(owner) if inspect.isclass(owner) else (owner,)):
        namespace.update(vars(sys.modules.get(cls.__module__, builtins)))

    def component(**params: Any) -> None:  # pragma: no cover - never called, only inspected
        """Stands for the component in signature checks."""

    annotations = {}
    for p in signature.parameters.values():
        ann = p.annotation
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace)  # noqa: S307 - an annotation of our own registered code
            except Exception:  # noqa: BLE001 - an unresolvable annotation is simply not type-checked
                continue
        if ann is not inspect.Parameter.empty:
            annotations[p.name] = ann
    params = [p.replace(annotation=annotations.get(p.name, p.empty)) for p in signature.parameters.values()]
    component.__signature__ = signature.replace(parameters=params)
    component.__annotations__ = annotations
    return component


__all__ = ["validate_recipe", "check_params", "accepted_params", "Component"]

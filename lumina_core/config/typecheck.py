"""A generic checker of plain config trees against typed dataclasses and of keyword arguments against a
callable's signature: every problem at once, as ``"path: message"`` strings.

* :func:`check_structure` walks a tree of dicts and lists against a dataclass type (unknown keys with the
  closest known key as a suggestion, wrong types, missing required values ``???``);
* :func:`check_params` binds a mapping of keyword arguments to a constructor's signature (missing required
  parameters, unknown ones with a suggestion, clear type mismatches) - what a registered component's
  ``params`` must satisfy.

Nothing here knows about recipes; :mod:`.validate` holds the recipe rules and calls these.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

from lumina_core.config.schema import Component  # named in messages: "a registered component {name, params}"

MISSING = "???"
#: constructor parameters a run passes itself (a dataset's split), never written in a recipe
PASSED_BY_THE_RUN = frozenset({"split"})


def _to_plain(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ModuleNotFoundError:  # pragma: no cover - omegaconf is a core dependency
        return cfg
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    return cfg


def _resolve(tree: dict, problems: list[str]) -> dict:
    """Resolve ``${...}`` interpolations; an interpolation that fails is a problem (the tree is kept)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = OmegaConf.create(tree)
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None) or "<recipe>"
        problems.append(f"{key}: interpolation does not resolve: {msg}")
        return tree


# ------------------------------------------------------------------------------------------------------
# pass 1: structure against the schema
# ------------------------------------------------------------------------------------------------------
def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _hints(tp: type) -> dict[str, Any]:
    return get_type_hints(tp)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _with_defaults(tp: Any, value: Any) -> Any:
    """Overlay ``value`` (plain data as written) on the schema defaults of ``tp``, recursively."""
    if _is_union(tp):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) == 1 and value is not None:
            return _with_defaults(inner[0], value)
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = _hints(tp)
        out = dataclasses.asdict(tp())
        for key, v in value.items():
            out[key] = _with_defaults(hints[key], v) if key in hints else v
        return out
    if get_origin(tp) is list and isinstance(value, list) and get_args(tp):
        return [_with_defaults(get_args(tp)[0], v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is Component:
        return "a registered component {name: ..., params: {...}}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    origin = get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return f"a list of {len(get_args(tp))} numbers"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _check_scalar(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def _check_structure(value: Any, tp: Any, path: str, problems: list[str]) -> None:
    if tp is Any:
        return
    if value == MISSING:
        problems.append(f"{path}: missing required value (???)")
        return
    if _is_interpolation(value):
        return  # checked once resolved
    if _is_union(tp):
        args = get_args(tp)
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            _check_structure(value, inner[0], path, problems)
            return
        if not any(_fits(value, a) for a in inner):
            problems.append(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
        return
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{path or '<recipe>'}: expected {_type_name(tp)}, got {_describe(value)}")
            return
        hints = _hints(tp)
        for key in value:
            if key not in hints:
                close = difflib.get_close_matches(str(key), list(hints), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(hints)}"
                problems.append(f"{_join(path, key)}: unknown key{hint}")
        for key, sub in hints.items():
            if key in value:
                _check_structure(value[key], sub, _join(path, key), problems)
        return
    origin = get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_describe(value)}")
            return
        (item,) = get_args(tp) or (Any,)
        for i, v in enumerate(value):
            _check_structure(v, item, _join(path, i), problems)
        return
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            problems.append(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
            return
        for i, (v, a) in enumerate(zip(value, args, strict=True)):
            _check_structure(v, a, _join(path, i), problems)
        return
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {_describe(value)}")
        return
    if value is None:
        problems.append(f"{path}: expected {_type_name(tp)}, got null")
        return
    if not _check_scalar(value, tp):
        problems.append(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")


def _fits(value: Any, tp: Any) -> bool:
    scratch: list[str] = []
    _check_structure(value, tp, "x", scratch)
    return not scratch


def accepted_params(obj: Any) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """Keyword parameters of a registered constructor / function and whether it takes ``**kwargs``.

    None when the signature cannot be read (builtins); then nothing is checked.
    """
    if inspect.isclass(obj) and obj.__init__ is object.__init__:
        return {}, False  # no constructor of its own: it takes no parameters
    if isinstance(obj, inspect.Signature):
        sig = obj
    else:
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return None
    params = {}
    var_kw = False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            params[p.name] = p
    return params, var_kw


def _annotation_types(obj: Any) -> dict[str, Any]:
    if isinstance(obj, inspect.Signature):  # annotations already resolved (strings are not evaluated)
        return {
            p.name: p.annotation
            for p in obj.parameters.values()
            if p.annotation is not p.empty and not isinstance(p.annotation, str)
        }
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not type-checked
        return {}


def check_params(
    obj: Any, params: Any, path: str, problems: list[str], what: str = "", complete: bool = True
) -> None:
    """Check ``params`` (a mapping) against the signature of ``obj``; record unknown names and clear type
    mismatches (only for parameters annotated ``int``, ``float``, ``bool`` or ``str``)."""
    if not isinstance(params, Mapping):
        return
    accepted = accepted_params(obj)
    if accepted is None:
        return
    names, var_kw = accepted
    hints = _annotation_types(obj)
    missing = [
        n for n, p in names.items()
        if complete and p.default is inspect.Parameter.empty and n not in params and n not in PASSED_BY_THE_RUN
    ]  # fmt: skip
    if missing:
        problems.append(
            f"{path}: {what} needs {', '.join(repr(m) for m in missing)} (no default); add "
            + ", ".join(f"{m}: ..." for m in missing)
        )
    for key, value in params.items():
        if key not in names:
            if var_kw:
                continue
            close = difflib.get_close_matches(str(key), list(names), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(names) or "(none)"
            problems.append(
                f"{_join(path, key)}: {what} does not take a parameter {key!r}{hint} (it takes: {known})"
            )
            continue
        tp = hints.get(key)
        if tp in (int, float, bool, str) and not _is_interpolation(value) and not _check_scalar(value, tp):
            problems.append(f"{_join(path, key)}: expected {tp.__name__}, got {_describe(value)}")

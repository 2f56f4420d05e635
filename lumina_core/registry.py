"""Named registries of components (modalities, conditioners, objectives, solvers, ...) and plugin discovery.

Public API (stable)::

    MODALITIES.register("image")(ImagePlugin)      # or as a decorator: @MODALITIES.register("image")
    MODALITIES.get("image")        -> the registered object (class or function)
    MODALITIES.build({"name": "image", "params": {...}}) -> get(name)(**params)
    MODALITIES.names()             -> sorted list of registered names
    MODALITIES.origin("image")     -> where the name was registered: "module (distribution version)"
    MODALITIES.origin_info("image") -> Origin(module, distribution, version, entry_point)

What recipe validation needs, the same for every registry::

    SOLVERS.base_class()           -> the abstract base every solver subclasses (``Solver``)
    SOLVERS.signature("heun")      -> inspect.Signature of the constructor (what ``params`` may hold)
    OBJECTIVES.nested("flow_matching") -> {"time_sampler": TIME_SAMPLERS}: constructor parameters that are
                                      themselves ``{name, params}`` components, as the class declares them
    SOLVERS.describe("heun")       -> ComponentInfo(name, kind, obj, signature, nested, base, conforms)
    parse_component(node)          -> ComponentSpec(name, params) from "heun" or {name: heun, params: {...}}
    with_defaults(Heun.__init__, final_euler=True) -> the same constructor with other defaults: how a
                                      configured component (``heun_edm``, the ``music`` modality = the
                                      ``audio`` representation at music's rate) is registered without
                                      re-declaring its parameters

Every extension point is an abstract base class in the core, named in recipes the same way,
``{name: ..., params: {...}}`` (or a bare name); a component declares which of its constructor parameters
are nested components with the class attribute ``nested_components = {"param": REGISTRY}`` (a registry or
its kind, e.g. ``"time sampler"``).

Where names come from:

* the core registers its own components when the module that defines them is imported; each registry knows
  which core modules provide it (``providers``) and imports them on the first lookup that needs them;
* plugins, built-in or third-party, are found through the entry-point group ``lumina.plugins``: the entry
  point's *name* is the plugin (modality) name and its *value* a module that registers things when imported.
  The installed metadata is scanned once per process (:func:`plugin_entries`), without importing anything,
  so plugin names can be listed cheaply; a plugin module is imported on first use (``get`` of a name that is
  not registered yet loads the entry point of that name, else every entry point not loaded yet).

Errors are written for people: an unknown name lists close matches, where names come from and the command
that lists them (``lumina plugins list``); a name registered twice names both origins; a plugin that fails to
import names its distribution, version and the cause (the other plugins keep working); a plugin written for
another major version of the core API (``ModalityPlugin.api_version`` vs ``lumina_core.CORE_API_VERSION``)
is refused.

This module imports only the standard library.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from lumina_core import CORE_API_VERSION

T = TypeVar("T")

#: the entry-point group third-party packages register in (name = plugin name, value = module to import)
ENTRY_POINT_GROUP = "lumina.plugins"
#: the command that lists every name, quoted in error messages
LIST_COMMAND = "lumina plugins list"
#: the distribution of this core; its own entry points declare the built-in modalities
CORE_DISTRIBUTION = "lumina"


# ------------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------------
class RegistryError(Exception):
    """Base class of registry errors (they carry a message meant for people)."""


class UnknownNameError(RegistryError, KeyError):
    """A name that no registration and no plugin provides. Also a ``KeyError`` (lookups)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(RegistryError, ValueError):
    """The same name registered by two different objects without ``override=True``."""


class IncompatiblePluginError(RegistryError, ValueError):
    """A component written for another major version of the core API."""


class NonConformingError(RegistryError, TypeError):
    """A component registered under a kind whose abstract base it does not subclass or leaves abstract."""


class PluginImportError(RegistryError, ImportError):
    """A plugin's entry point module failed to import (names distribution, version and cause)."""


# ------------------------------------------------------------------------------------------------------
# origins and entry points
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Origin:
    """Where a registered name comes from."""

    module: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None  # "name = value" when registered while loading an entry point

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.module} (distribution {self.distribution} {self.version or '?'})"
        return f"{self.module} (not from an installed distribution)"


@dataclass
class PluginEntry:
    """One entry point of the ``lumina.plugins`` group and its load state."""

    name: str
    value: str  # module imported to load the plugin
    distribution: str | None
    version: str | None
    status: str = "not loaded"  # "not loaded" | "loading" | "loaded" | "broken"
    error: PluginImportError | None = None
    registered: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) registered on import

    @property
    def where(self) -> str:
        dist = (
            f"distribution {self.distribution} {self.version or '?'}"
            if self.distribution
            else "no distribution"
        )
        return f"{dist}, entry point {self.name} = {self.value}"


_lock = threading.RLock()
_entries: dict[str, PluginEntry] | None = None
_loading: list[PluginEntry] = []  # stack of entry points being imported (registrations are attributed to it)
_dist_of_package: dict[str, list[str]] | None = None
ALL_REGISTRIES: dict[str, Registry] = {}


def _scan_entry_points() -> dict[str, PluginEntry]:
    found: dict[str, PluginEntry] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        if ep.name in found:  # the same plugin name from two distributions: the second one is broken
            other = found[ep.name]
            entry = PluginEntry(ep.name, ep.value, dist_name, version, status="broken")
            entry.error = PluginImportError(
                f"plugin {ep.name!r} is declared twice: by {other.where} and by {entry.where}; "
                "uninstall one of the two distributions"
            )
            found[f"{ep.name} ({dist_name})"] = entry
            continue
        found[ep.name] = PluginEntry(ep.name, ep.value, dist_name, version)
    return found


def core_installed() -> bool:
    """Whether the ``lumina`` distribution is installed (its metadata declares the built-in modalities).

    Run from a source tree that was never pip-installed, the built-in modalities have no entry points; the
    registry does not work around that, it says so in its errors (``pip install -e .``)."""
    try:
        importlib.metadata.distribution(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def plugin_entries(refresh: bool = False) -> dict[str, PluginEntry]:
    """The ``lumina.plugins`` entry points, scanned once per process (``refresh=True`` rescans).

    Nothing is imported: this is how plugin names are listed without loading the plugins.
    """
    global _entries
    with _lock:
        if _entries is None or refresh:
            _entries = _scan_entry_points()
        return _entries


def plugin_names() -> list[str]:
    """Names of every plugin declared by an entry point (loaded or not), without importing any."""
    return sorted(e.name for e in plugin_entries().values() if e.value and "(" not in e.name)


def reset_plugins() -> None:
    """Forget the entry-point scan (tests that fake entry points call this; registrations stay)."""
    global _entries, _dist_of_package
    with _lock:
        _entries = None
        _dist_of_package = None


def load_plugin(name: str) -> PluginEntry:
    """Import the entry point ``name`` (once). Raises :class:`PluginImportError` if its import failed."""
    entries = plugin_entries()
    if name not in entries:
        raise UnknownNameError(
            f"no plugin {name!r} is installed; plugins: {', '.join(plugin_names()) or '(none)'}. "
            f"Run `{LIST_COMMAND}` to see them."
        )
    entry = entries[name]
    with _lock:
        if entry.status == "not loaded":
            entry.status = "loading"
            _loading.append(entry)
            try:
                importlib.import_module(entry.value)
            except KeyboardInterrupt:
                entry.status = "not loaded"
                raise
            except BaseException as exc:  # noqa: BLE001 - any import failure (sys.exit() too) makes it "broken"
                entry.status = "broken"
                cause = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                if isinstance(exc, SystemExit):
                    cause = f"it called sys.exit({exc.code!r}) while being imported"
                entry.error = PluginImportError(
                    f"plugin {entry.name!r} failed to import ({entry.where}): {cause}"
                )
                entry.error.__cause__ = exc
                for kind, key in entry.registered:  # a half-imported plugin registers nothing usable
                    reg = ALL_REGISTRIES.get(kind)
                    if reg is not None and reg._origins.get(key, Origin("")).entry_point:
                        reg.unregister(key)
                entry.registered.clear()
            else:
                entry.status = "loaded"
            finally:
                _loading.pop()
    if entry.status == "broken":
        assert entry.error is not None
        raise entry.error
    return entry


def load_all_plugins() -> list[PluginEntry]:
    """Import every entry point not loaded yet; a broken one is marked and skipped. Returns the broken ones."""
    broken = []
    for name, entry in list(plugin_entries().items()):
        if entry.status == "not loaded":
            try:
                load_plugin(name)
            except PluginImportError:
                pass
        if entry.status == "broken":
            broken.append(entry)
    return broken


def _distribution_of_module(module: str) -> tuple[str | None, str | None]:
    global _dist_of_package
    with _lock:
        if _dist_of_package is None:
            try:
                _dist_of_package = dict(importlib.metadata.packages_distributions())
            except Exception:  # noqa: BLE001 - broken metadata must not break lookups
                _dist_of_package = {}
    top = module.split(".")[0]
    dists = _dist_of_package.get(top) or []
    if dists:
        try:
            return dists[0], importlib.metadata.version(dists[0])
        except importlib.metadata.PackageNotFoundError:
            return dists[0], None
    return None, None


def _major(version: str) -> str:
    return str(version).strip().split(".")[0]


# ------------------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------------------
class Registry(Generic[T]):
    """A mapping from names to components of one kind.

    Args:
        kind: what the registry holds, in words ("modality", "time grid", ...), used in messages.
        providers: core modules that register components of this kind when imported; they are imported on
            the first lookup of a name that is not registered yet.
        base: ``"module:Class"`` of the abstract base class the components subclass (imported on first
            use of :meth:`base_class`, so this module stays free of torch).
    """

    def __init__(self, kind: str, providers: Sequence[str] = (), base: str | None = None) -> None:
        self.kind = kind
        self.providers = tuple(providers)
        self.base = base
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._providers_loaded = False
        ALL_REGISTRIES.setdefault(kind, self)  # the first registry of a kind is the one listed

    # -- registration ----------------------------------------------------------------------------------
    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: ``obj.name``, then ``obj.__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            origin = self._origin_for(obj)
            api = getattr(obj, "api_version", None)
            if isinstance(api, str) and _major(api) != _major(CORE_API_VERSION):
                raise IncompatiblePluginError(
                    f"{self.kind} {key!r} from {origin} was written for core API {api}, but this lumina core "
                    f"provides API {CORE_API_VERSION} (the major versions differ); install a version of the "
                    "plugin built for this core, or a core matching the plugin"
                )
            self._check_conforms(key, obj, origin)
            with _lock:
                if key in self._items and not override and self._items[key] is not obj:
                    raise DuplicateNameError(
                        f"{self.kind} {key!r} is registered twice: by {self._origins[key]} and by {origin}; "
                        "pass override=True to replace it on purpose"
                    )
                self._items[key] = obj
                self._origins[key] = origin
                if _loading:
                    _loading[-1].registered.append((self.kind, key))
            return obj

        return deco

    def _check_conforms(self, key: str, obj: Any, origin: Origin) -> None:
        """Refuse ``obj`` unless it is a concrete subclass of the registry's base, naming what is missing."""
        base = self.base_class()
        if base is None:
            return
        base_name = f"{base.__module__}.{base.__qualname__}"
        required = sorted(getattr(base, "__abstractmethods__", ()))
        if not (inspect.isclass(obj) and issubclass(obj, base)):
            what = "class" if inspect.isclass(obj) else type(obj).__name__
            lacking = [m for m in required if not callable(getattr(obj, m, None))]
            how = getattr(base, "how_to_conform", None) or (
                f"subclass it, implementing {', '.join(required)}" if required else "subclass it"
            )
            raise NonConformingError(
                f"{self.kind} {key!r} from {origin} is a {what} that does not subclass {base_name}, which "
                f"every {self.kind} must: {how}"
                + (f" ({key!r} lacks {', '.join(lacking)})" if lacking else "")
                + "; then register it again."
            )
        unimplemented = sorted(getattr(obj, "__abstractmethods__", ()))
        if unimplemented:
            raise NonConformingError(
                f"{self.kind} {key!r} from {origin} subclasses {base_name} but does not implement "
                f"{', '.join(unimplemented)}; implement them (see the base's docstrings) and register again."
            )
        more = getattr(base, "conformance_problems", None)  # what a base asks beyond its abstract methods
        problems = list(obj.conformance_problems()) if callable(more) else []
        if problems:
            raise NonConformingError(f"{self.kind} {key!r} from {origin}: {'; '.join(problems)}; then register it again.")

    @staticmethod
    def _origin_for(obj: Any) -> Origin:
        module = getattr(obj, "__module__", None) or "?"
        qual = getattr(obj, "__qualname__", None)
        where = f"{module}.{qual}" if qual else module
        if _loading:
            entry = _loading[-1]
            return Origin(where, entry.distribution, entry.version, f"{entry.name} = {entry.value}")
        return Origin(where)

    # -- lookup ----------------------------------------------------------------------------------------
    def _load_providers(self) -> None:
        if self._providers_loaded:
            return
        self._providers_loaded = True
        for module in self.providers:
            if module not in sys.modules:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as exc:
                    # a provider that does not exist (yet) is not an error; a broken one is
                    if exc.name is None or not module.startswith(exc.name):
                        raise

    def _find(self, name: str) -> T | None:
        if name in self._items:
            return self._items[name]
        self._load_providers()
        if name in self._items:
            return self._items[name]
        entries = plugin_entries()
        if name in entries and entries[name].status == "not loaded":
            load_plugin(name)  # raises PluginImportError naming the distribution if it fails
            if name in self._items:
                return self._items[name]
        if name in entries and entries[name].status == "broken":
            raise entries[name].error  # type: ignore[misc]
        load_all_plugins()
        return self._items.get(name)

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing core providers / plugins on first use."""
        obj = self._find(name)
        if obj is None:
            raise UnknownNameError(self._unknown_message(name))
        return obj

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        lines = [f"unknown {self.kind} {name!r}."]
        if close:
            lines.append(f"Did you mean: {', '.join(repr(c) for c in close)}?")
        lines.append(f"Known {self.kind} names: {', '.join(known) or '(none)'}.")
        entries = plugin_entries()
        lines.append(
            f"Names come from the core ({', '.join(self.providers) or 'no core module'}) and from plugins "
            f"installed under the entry-point group {ENTRY_POINT_GROUP!r} "
            f"({', '.join(sorted(e.name for e in entries.values())) or 'none installed'})."
        )
        broken = [e for e in entries.values() if e.status == "broken"]
        for e in broken:
            lines.append(f"Note: {e.error}")
        if not core_installed():
            lines.append(
                f"Note: the {CORE_DISTRIBUTION!r} distribution is not installed in this environment, so the "
                "built-in modalities have no entry points: run `pip install -e .` in the repository."
            )
        lines.append(f"Run `{LIST_COMMAND}` to list every name.")
        return " ".join(lines)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Registered names close to ``name`` (difflib)."""
        return difflib.get_close_matches(str(name), self.names(), n=n, cutoff=0.5)

    def build(self, node: Any, **extra: Any) -> Any:
        """Build from ``{"name": ..., "params": {...}}`` (or a bare name): ``get(name)(**params, **extra)``.

        ``node`` may be an OmegaConf node; its params reach the constructor as plain dicts and lists."""
        spec = parse_component(node, self.kind)
        return self.get(spec.name)(**spec.params, **extra)

    # -- what validation reads -------------------------------------------------------------------------
    def base_class(self) -> type | None:
        """The abstract base class of this kind of component (None for a registry declared without one)."""
        if self.base is None:
            return None
        module, _, attr = self.base.partition(":")
        return getattr(importlib.import_module(module), attr)

    def signature(self, name: str) -> inspect.Signature:
        """What the ``params`` of a recipe node naming ``name`` may hold: the constructor's signature (without
        ``self``) plus, keyword-only, the settings every component of the kind shares when the base class
        declares them (``shared_parameters``; e.g. a RoPE scaling's ``scale``)."""
        sig = inspect.signature(self.get(name))
        shared = tuple(getattr(self.base_class(), "shared_parameters", ()) or ())
        if not shared:
            return sig
        own = [p for p in sig.parameters.values() if p.name not in {s.name for s in shared}]
        ordered = sorted([*shared, *own], key=lambda p: p.kind)  # stable: keeps each group's order
        return sig.replace(parameters=ordered)

    def nested(self, name: str) -> dict[str, Registry]:
        """Constructor parameters of ``name`` that are themselves registered components, each with its
        registry, as the component declares them (``nested_components``; empty when it declares none)."""
        obj = self.get(name)
        declared = getattr(obj, "nested_components", None) or {}
        out: dict[str, Registry] = {}
        for param, reg in dict(declared).items():
            if isinstance(reg, str):
                self._load_all_providers()
                if reg not in ALL_REGISTRIES:
                    raise RegistryError(
                        f"{self.kind} {name!r} declares its parameter {param!r} a component of an unknown kind "
                        f"{reg!r}; kinds: {', '.join(sorted(ALL_REGISTRIES))}"
                    )
                reg = ALL_REGISTRIES[reg]
            out[param] = reg
        return out

    def conforms(self, name: str) -> bool:
        """Whether ``name`` subclasses the registry's base class (True when the registry declares none).
        Registration refuses any other, so this holds for every registered name."""
        base = self.base_class()
        obj = self.get(name)
        return base is None or (inspect.isclass(obj) and issubclass(obj, base))

    def describe(self, name: str) -> ComponentInfo:
        """Everything validation needs about ``name``, in one record."""
        return ComponentInfo(
            name=name,
            kind=self.kind,
            obj=self.get(name),
            signature=self.signature(name),
            nested=self.nested(name),
            base=self.base_class(),
            conforms=self.conforms(name),
        )

    @staticmethod
    def _load_all_providers() -> None:
        for r in list(ALL_REGISTRIES.values()):
            r._load_providers()

    def names(self) -> list[str]:
        """Sorted names registered so far (core providers are imported first; plugins are not)."""
        self._load_providers()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        """Where ``name`` was registered, as ``"module.Object (distribution NAME VERSION)"``."""
        return str(self.origin_info(name))

    def origin_info(self, name: str) -> Origin:
        self.get(name)
        origin = self._origins[name]
        if origin.distribution is None:
            dist, version = _distribution_of_module(origin.module)
            if dist is not None:
                origin = Origin(origin.module, dist, version, origin.entry_point)
                self._origins[name] = origin
        return origin

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests use this to undo registrations)."""
        with _lock:
            self._items.pop(name, None)
            self._origins.pop(name, None)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._items)} names)"


# ------------------------------------------------------------------------------------------------------
# recipe nodes
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComponentSpec:
    """A recipe's ``{name: ..., params: {...}}`` node as plain Python."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentInfo:
    """What :meth:`Registry.describe` reports about one registered name.

    Attributes:
        signature: the constructor's (what ``params`` may hold).
        nested: constructor parameters that are components themselves, with their registries.
        base: the registry's abstract base class (None: the registry declares none).
        conforms: whether the component subclasses ``base``.
    """

    name: str
    kind: str
    obj: Any
    signature: inspect.Signature
    nested: dict[str, Registry]
    base: type | None
    conforms: bool


def plain(value: Any) -> Any:
    """Mappings and lists (OmegaConf nodes too: interpolations resolved, missing values left as ``"???"``)
    as plain dicts and lists."""
    if isinstance(value, str | bytes):
        return value
    if type(value).__module__.startswith("omegaconf"):  # a DictConfig/ListConfig: "???" stays "???"
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True, throw_on_missing=False)
    if isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        return {k: plain(value[k]) for k in value.keys()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [plain(v) for v in value]
    return value


def parse_component(node: Any, kind: str = "component") -> ComponentSpec:
    """A bare name, a ``{name, params}`` mapping (dict or OmegaConf node) or an object with ``name`` and
    ``params`` attributes (the schema's ``Component``) as a :class:`ComponentSpec`.

    Raises ValueError saying what was expected when the node is neither."""
    if isinstance(node, ComponentSpec):
        return node
    if isinstance(node, str):
        return ComponentSpec(node, {})
    if not hasattr(node, "keys") and hasattr(node, "name") and hasattr(node, "params"):  # schema dataclass
        node = {"name": node.name, "params": node.params}
    if not (isinstance(node, Mapping) or hasattr(node, "keys")) or "name" not in node:
        raise ValueError(f"a {kind} is named as a string or as {{name: ..., params: {{...}}}}; got {node!r}")
    params = plain(node["params"]) if "params" in node and node["params"] is not None else {}
    if not isinstance(params, dict):
        raise ValueError(f"the params of {kind} {node['name']!r} must be a mapping; got {params!r}")
    extra = sorted(set(node.keys()) - {"name", "params"})
    if extra:
        raise ValueError(
            f"{kind} {node['name']!r}: a component node has only `name` and `params`; got also "
            f"{', '.join(map(str, extra))} (put constructor arguments under params)"
        )
    return ComponentSpec(str(node["name"]), params)


def with_defaults(func: Callable[..., Any], **defaults: Any) -> Callable[..., Any]:
    """A copy of ``func`` (a constructor) whose parameters ``defaults`` have these default values.

    The copy has the same code, annotations and signature but for the defaults, so a subclass that sets
    ``__init__ = with_defaults(Base.__init__, ...)`` is the base configured differently: validation reads its
    signature (and its new defaults) like any other component's, and nothing is re-declared or forwarded.
    Only parameters that already have a default can get another one (TypeError otherwise)."""
    params = inspect.signature(func).parameters
    positional = [p.name for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    pos_defaults = tuple(func.__defaults__ or ())
    with_default = positional[len(positional) - len(pos_defaults) :]
    kw_defaults = dict(func.__kwdefaults__ or {})
    unknown = [k for k in defaults if k not in with_default and k not in kw_defaults]
    if unknown:
        takes = ", ".join([*with_default, *kw_defaults]) or "(none)"
        raise TypeError(
            f"{func.__qualname__} has no parameter with a default named {', '.join(map(repr, unknown))} "
            f"(parameters with defaults: {takes})"
        )
    new = types.FunctionType(
        func.__code__,
        func.__globals__,
        func.__name__,
        tuple(defaults.get(n, d) for n, d in zip(with_default, pos_defaults, strict=True)),
        func.__closure__,
    )
    new.__kwdefaults__ = {k: defaults.get(k, v) for k, v in kw_defaults.items()} or None
    new.__annotations__ = dict(func.__annotations__)
    new.__doc__, new.__qualname__, new.__module__ = func.__doc__, func.__qualname__, func.__module__
    return new


@contextmanager
def temporary_registrations() -> Iterator[None]:
    """Undo every registration made inside the block (for tests).

    The core providers are imported first, so their registrations (made once per process) survive.
    """
    for r in list(ALL_REGISTRIES.values()):
        r._load_providers()
    saved = {k: (dict(r._items), dict(r._origins)) for k, r in ALL_REGISTRIES.items()}
    try:
        yield
    finally:
        for k, r in ALL_REGISTRIES.items():
            if k in saved:
                r._items, r._origins = saved[k]


MODALITIES: Registry = Registry("modality", base="lumina_core.plugin:ModalityPlugin")
CONDITIONERS: Registry = Registry(
    "conditioner", providers=("lumina_core.conditioning",), base="lumina_core.conditioning.base:Conditioner"
)  # text encoders, ...
OBJECTIVES: Registry = Registry(
    "objective",
    providers=("lumina_core.flow", "lumina_core.recognition"),
    base="lumina_core.objective:Objective",
)
SOLVERS: Registry = Registry(
    "solver", providers=("lumina_core.sampling",), base="lumina_core.sampling.solvers:Solver"
)
TIME_GRIDS: Registry = Registry(
    "time grid", providers=("lumina_core.sampling",), base="lumina_core.sampling.grids:TimeGrid"
)
TIME_SAMPLERS: Registry = Registry(
    "time sampler", providers=("lumina_core.flow",), base="lumina_core.flow.time_samplers:TimeSampler"
)
DATASETS: Registry = Registry("dataset", base="lumina_core.data.contract:DatasetContract")
#: frozen representation transforms with encode()/decode(): image autoencoders, mel frontend + vocoder, ...
#: Lets one modality use another package's codec by name, without importing it.
CODECS: Registry = Registry("codec", base="lumina_core.codec:Codec")
#: RoPE scalings for positions beyond the training extent (``tasks.N.sampling.rope_scaling.name``)
ROPE_SCALINGS: Registry = Registry(
    "RoPE scaling", providers=("lumina_core.model.rope",), base="lumina_core.model.rope:RopeScalingRule"
)
#: foreign checkpoint layouts ``lumina convert --from NAME`` reads, provided by plugins (image: released, diffusers)
CHECKPOINT_FORMATS: Registry = Registry("checkpoint format", base="lumina_core.interop.checkpoint_format:CheckpointFormat")
#: trunk families ``model.family`` names: the shared network between the tasks' adapters (next_dit, unified)
TRUNK_FAMILIES: Registry = Registry(
    "trunk family",
    providers=("lumina_core.model.nextdit", "lumina_core.model.unified"),
    base="lumina_core.model.family:Trunk",
)
#: how tasks share one trunk in a multi-task run (``train.composition``): loss normalisation, PCGrad, task
#: embeddings and modulation, temperature-scaled draws, per-task optimiser moments, shared adapter starts
#: (lumina_core/training/composition)
COMPOSITIONS: Registry = Registry(
    "composition method",
    providers=("lumina_core.training.composition",),
    base="lumina_core.training.composition.base:Composition",
)
#: LoRA layouts ``lumina lora export --format NAME`` writes, provided by plugins (image: diffusers, comfyui)
LORA_FORMATS: Registry = Registry("LoRA export format", base="lumina_core.finetune.export:LoraExportFormat")

"""Named registries of components (modalities, conditioners, objectives, solvers, ...).

FIRST DRAFT - the registry owner extends this (entry points, origins, close-match errors) while keeping
this public API stable:

    MODALITIES.register("image")(ImagePlugin)      # or as a decorator: @MODALITIES.register("image")
    MODALITIES.get("image")        -> the registered object (class or function)
    MODALITIES.build({"name": "image", "params": {...}}) -> get(name)(**params)
    MODALITIES.names()             -> sorted list of names
    MODALITIES.origin("image")     -> where the name was registered (module / distribution)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to components of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            origin = getattr(obj, "__module__", "?")
            if key in self._items and not override and self._items[key] is not obj:
                raise ValueError(
                    f"{self.kind} {key!r} is registered twice: by {self._origins[key]} and by {origin}; "
                    "pass override=True to replace it on purpose"
                )
            self._items[key] = obj
            self._origins[key] = origin
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}")
        return self._items[name]

    def build(self, node: Any, **extra: Any) -> Any:
        """Build from ``{"name": ..., "params": {...}}`` (or a bare name): ``get(name)(**params, **extra)``."""
        if isinstance(node, str):
            name, params = node, {}
        else:
            name, params = node["name"], dict(node.get("params") or {})
        return self.get(name)(**params, **extra)

    def names(self) -> list[str]:
        return sorted(self._items)

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items


MODALITIES: Registry = Registry("modality")
CONDITIONERS: Registry = Registry("conditioner")  # text encoders, class embedders, ...
OBJECTIVES: Registry = Registry("objective")
SOLVERS: Registry = Registry("solver")
TIME_GRIDS: Registry = Registry("time grid")
TIME_SAMPLERS: Registry = Registry("time sampler")
DATASETS: Registry = Registry("dataset")

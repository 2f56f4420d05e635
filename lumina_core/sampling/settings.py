"""Sampling settings: a recipe's ``sampling`` section built once into typed, frozen components.

    settings = SamplingSettings.from_config(task_config.sampling)     # solver, grid, RoPE scaling... built
    settings = settings.with_overrides(steps=8, cfg_scale=4.0)         # a new object; the old one unchanged
    samples  = generate(model, plugin, conditioner, task, conditions, settings=settings)

Every loose form a recipe or a caller may write is normalised here and nowhere else: a solver or grid given as
a name, a ``{name, params}`` node or an instance; ``rope_scaling`` as None, a kind name, a ``{name, params}``
node or a :class:`~lumina_core.model.rope.RopeScaling` (:meth:`RopeScaling.build` is the one normaliser);
``context_drop`` as None, a mapping or a :class:`~lumina_core.model.context_drop.ContextDrop`. A bad value
fails when the settings are built, before any model call.

Guidance (:class:`Guidance`): ``v = v_u + w (v_c - v_u)`` while ``t < trunc`` (on the token channels
``channels`` picks, all by default), the result's norm per sample clipped to ``renorm |v_c|`` when ``renorm``
is set (:mod:`lumina_core.sampling.guidance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from torch import Tensor

from lumina_core.registry import plain
from lumina_core.sampling.grids import ExplicitGrid, TimeGrid
from lumina_core.sampling.integrate import build_solver
from lumina_core.sampling.solvers import Solver

if TYPE_CHECKING:
    from lumina_core.model.context_drop import ContextDrop
    from lumina_core.model.rope import RopeScaling

PRECISIONS = ("fp32", "bf16", "auto")

#: the recipe's names of the settings (``sampling.<name>``), which overrides use
SETTING_NAMES = (
    "steps",
    "solver",
    "grid",
    "cfg_scale",
    "cfg_channels",
    "cfg_trunc",
    "cfg_renorm",
    "rope_scaling",
    "context_drop",
    "seed",
    "precision",
)


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance.

    Attributes:
        scale: ``w`` in ``v_u + w (v_c - v_u)``; 1 disables guidance (one model call per evaluation).
        channels: None (guide every token channel), an int k (the sample's first k channels, as the plugin's
            ``guidance_mask`` maps them to token channels), a (D,) bool mask, or a callable ``(D) -> mask``.
        trunc: guidance only while the flow time ``t < trunc`` (1: throughout; Lumina-Image 2.0's truncation).
        renorm: None, or r > 0: the guided velocity's norm per sample clipped to r times the conditional one's.
    """

    scale: float = 1.0
    channels: Any = None
    trunc: float = 1.0
    renorm: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "trunc", float(self.trunc))
        if not 0.0 <= self.trunc <= 1.0:
            raise ValueError(
                f"cfg_trunc is the flow time (0 noise, 1 data) from which guidance stops, in [0, 1]; got {self.trunc}"
            )
        if self.renorm is not None:
            object.__setattr__(self, "renorm", float(self.renorm))
            if not self.renorm > 0.0:
                raise ValueError(
                    "cfg_renorm clips the guided velocity's norm to that many times the conditional one's: a "
                    f"number > 0, or null for no clipping; got {self.renorm}"
                )
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def active(self) -> bool:
        """True when guidance changes the velocity (``scale != 1``); the model must also be conditioned."""
        return self.scale != 1.0


@dataclass(frozen=True)
class SamplingSettings:
    """How one task samples, every component built.

    Attributes:
        solver: the ODE solver (:class:`Solver`; a copy runs each generation, multistep solvers keep state).
        grid: the time grid (:class:`TimeGrid`); a ``token_shift`` grid is resolved per layout at generation.
        steps: solver steps; None only with an ``explicit`` grid, which has its own.
        guidance: classifier-free guidance (:class:`Guidance`).
        rope_scaling: RoPE scaling for sizes beyond training (:class:`RopeScaling`), or None.
        context_drop: pooled self-attention keys and values (:class:`ContextDrop`), or None.
        seed: seed of the sampling noise (a generation's first sample; ``Task.generate`` adds the batch start).
        precision: the model's precision while sampling, one of :data:`PRECISIONS` (integration stays fp32).
        spec: the settings in recipe form (solver and grid as ``{name, params}``...), for manifests and logs.
    """

    solver: Solver
    grid: TimeGrid
    steps: int | None = None
    guidance: Guidance = field(default_factory=Guidance)
    rope_scaling: RopeScaling | None = None
    context_drop: ContextDrop | None = None
    seed: int = 0
    precision: str = "fp32"
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"sampling precision must be one of {PRECISIONS}; got {self.precision!r}")
        if self.steps is None and not isinstance(self.grid, ExplicitGrid):
            raise ValueError(f"time grid {type(self.grid).__name__} needs a number of steps; got steps=None")
        if self.steps is not None and (int(self.steps) != self.steps or int(self.steps) < 1):
            raise ValueError(f"steps must be a positive whole number; got {self.steps!r}")
        if not self.spec:  # built from components directly: they stand for themselves
            g = self.guidance
            object.__setattr__(self, "spec", {
                "steps": self.steps, "solver": self.solver, "grid": self.grid, "cfg_scale": g.scale,
                "cfg_channels": g.channels, "cfg_trunc": g.trunc, "cfg_renorm": g.renorm,
                "rope_scaling": self.rope_scaling, "context_drop": self.context_drop, "seed": self.seed,
                "precision": self.precision,
            })  # fmt: skip

    # -- building --------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, **values: Any) -> SamplingSettings:
        """Settings from the recipe's names (:data:`SETTING_NAMES`) in any of their loose forms; a missing or
        None value takes the recipe schema's default (:class:`lumina_core.config.schema.SamplingConfig`), except
        that an ``explicit`` grid keeps ``steps`` None (it has its own)."""
        from lumina_core.config.schema import SamplingConfig
        from lumina_core.config.typed import component_spec

        unknown = sorted(set(values) - set(SETTING_NAMES))
        if unknown:
            raise ValueError(f"unknown sampling settings {unknown}; known: {sorted(SETTING_NAMES)}")
        default = SamplingConfig()
        given = {k: v for k, v in values.items() if v is not None}
        recipe = {name: getattr(default, name) for name in SETTING_NAMES} | given
        if "grid" in given and _grid_name(given["grid"]) == "explicit" and "steps" not in given:
            recipe["steps"] = None  # an explicit grid has its own steps
        recipe["solver"] = component_spec(recipe["solver"])
        recipe["grid"] = component_spec(recipe["grid"])
        recipe["rope_scaling"] = component_spec(recipe["rope_scaling"])
        return cls._from_recipe(recipe)

    @classmethod
    def from_config(cls, config: Any) -> SamplingSettings:
        """Settings of a typed ``sampling`` section (:class:`lumina_core.config.schema.SamplingConfig`)."""
        return cls.build(**{name: getattr(config, name) for name in SETTING_NAMES})

    def with_overrides(self, **overrides: Any) -> SamplingSettings:
        """A copy with some settings replaced, named as in the recipe (``steps=8``, ``solver="euler"``,
        ``cfg_scale=4.0``...); a None override keeps the current value; an unknown name raises ValueError."""
        unknown = sorted(set(overrides) - set(SETTING_NAMES))
        if unknown:
            raise ValueError(f"unknown sampling settings {unknown}; known: {sorted(SETTING_NAMES)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        merged = self.spec | given
        if "grid" in given and _grid_name(given["grid"]) == "explicit" and "steps" not in given:
            merged.pop("steps")  # a new explicit grid brings its own steps
        return type(self).build(**merged)

    def with_seed(self, seed: int) -> SamplingSettings:
        """The same settings with another noise seed (no component is rebuilt)."""
        return replace(self, seed=int(seed), spec=self.spec | {"seed": int(seed)})

    @classmethod
    def _from_recipe(cls, recipe: dict[str, Any]) -> SamplingSettings:
        from lumina_core.model.context_drop import ContextDrop
        from lumina_core.model.rope import RopeScaling
        from lumina_core.registry import TIME_GRIDS

        grid = recipe["grid"]
        steps = recipe["steps"]
        if isinstance(grid, Tensor | list | tuple):  # the times themselves: they say how many steps
            grid, steps = ExplicitGrid([float(t) for t in grid]), None
        elif not isinstance(grid, TimeGrid):
            grid = TIME_GRIDS.build(_plain_node(grid))
        drop = recipe["context_drop"]
        return cls(
            solver=build_solver(_plain_node(recipe["solver"])),
            grid=grid,
            steps=None if steps is None else int(steps),
            guidance=Guidance(
                recipe["cfg_scale"],
                _plain_node(recipe["cfg_channels"]),
                recipe["cfg_trunc"],
                recipe["cfg_renorm"],
            ),
            rope_scaling=RopeScaling.build(_plain_node(recipe["rope_scaling"])),
            context_drop=ContextDrop.build(_plain_node(drop)),
            seed=int(recipe["seed"]),
            precision=str(recipe["precision"]),
            spec={k: _plain_node(v) for k, v in recipe.items()},
        )

    # -- reading ---------------------------------------------------------------------------------------------
    def describe(self, *names: str) -> dict[str, Any]:
        """The named settings (all when none is named) in recipe form, e.g. for a manifest."""
        return {k: self.spec[k] for k in (names or SETTING_NAMES)}


def _plain_node(value: Any) -> Any:
    """OmegaConf nodes and mappings as plain data; built objects, names and numbers unchanged."""
    if isinstance(value, str) or not (hasattr(value, "keys") or type(value).__name__ == "ListConfig"):
        return value
    return plain(value)


def _grid_name(grid: Any) -> str | None:
    if isinstance(grid, ExplicitGrid | Tensor | list | tuple):
        return "explicit"
    if isinstance(grid, str):
        return grid
    return getattr(grid, "get", lambda k: None)("name")

"""Every extension point the same way: an abstract base per registry, constructor signatures and declared
nested components for validation, ``{name, params}`` nodes, configured components (``with_defaults``)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from omegaconf import OmegaConf

from lumina_core import registry
from lumina_core.registry import (
    CODECS,
    MODALITIES,
    OBJECTIVES,
    ROPE_SCALINGS,
    SOLVERS,
    TIME_GRIDS,
    TIME_SAMPLERS,
    ComponentSpec,
    RegistryError,
    load_all_plugins,
    parse_component,
    temporary_registrations,
    with_defaults,
)
from lumina_core.sampling import Solver, integrate

SHIPPED = ("lumina_core.", "lumina_modalities.", "lumina_video.")


def _shipped(reg, name: str) -> bool:
    return reg.origin_info(name).module.startswith(SHIPPED)


def test_every_shipped_component_subclasses_its_registrys_base():
    """Every kind subclasses its base; of the datasets, the streams (iterable, built on the core's
    ``ShardStream``) are left out, the map-style ones subclass ``LuminaDataset``."""
    load_all_plugins()
    checked = 0
    core = [
        r for r in vars(registry).values() if isinstance(r, registry.Registry)
    ]  # not tests' own registries
    assert len(core) == 13  # ... CHECKPOINT_FORMATS, LORA_FORMATS, TRUNK_FAMILIES and COMPOSITIONS
    for reg in core:
        kind, base = reg.kind, reg.base_class()
        assert base is not None and base.__module__.startswith("lumina_core."), kind
        for name in reg.names():
            if kind == "dataset" and issubclass(reg.get(name), torch.utils.data.IterableDataset):
                continue
            if _shipped(reg, name):
                assert reg.conforms(name), f"{kind} {name!r} ({reg.origin(name)}) does not subclass {base}"
                checked += 1
    assert (
        checked >= 30
    )  # solvers, grids, samplers, objectives, conditioners, codecs, RoPE scalings, modalities, datasets, formats


def test_validation_reads_signatures_and_declared_nested_components():
    load_all_plugins()
    assert list(SOLVERS.signature("heun").parameters) == ["final_euler"]
    assert OBJECTIVES.nested("flow_matching") == {"time_sampler": TIME_SAMPLERS}
    assert MODALITIES.nested("audio") == {"codec": CODECS}
    assert MODALITIES.nested("music") == {"codec": CODECS}  # inherited with the representation
    assert MODALITIES.nested("image") == {"autoencoder": CODECS}  # a name NESTED_COMPONENTS never guessed
    assert MODALITIES.nested("multiview") == {"autoencoder": CODECS}  # declared by kind, resolved
    assert SOLVERS.nested("euler") == {}
    info = SOLVERS.describe("dopri5")
    assert (
        info.base is Solver
        and info.conforms
        and set(info.signature.parameters) == {"rtol", "atol", "max_num_steps"}
    )


def test_what_a_signature_accepts_builds():
    """For every shipped solver, grid, time sampler and RoPE scaling: a node giving every parameter of
    ``signature(name)`` at its default builds (RoPE scalings: with their shared settings, through the same
    ``RopeScaling.build`` a run uses)."""
    from lumina_core.model.rope import RopeScaling

    assert list(ROPE_SCALINGS.signature("ntk").parameters) == [
        "ntk_mode",
        "scale",
        "proportional_attention",
        "scale_mode",
        "train_tokens",
        "shrink",
    ]
    built = 0
    for reg in (SOLVERS, TIME_GRIDS, TIME_SAMPLERS, ROPE_SCALINGS):
        for name in reg.names():
            params = reg.signature(name).parameters.values()
            if any(p.default is inspect.Parameter.empty for p in params):
                continue  # the explicit grid needs its values
            node = {"name": name, "params": {p.name: p.default for p in params}}
            obj = RopeScaling.build(node) if reg is ROPE_SCALINGS else reg.build(node)
            assert obj is not None
            built += 1
    assert built >= 20


def test_a_nested_component_of_an_unknown_kind_is_explained():
    class Bad(Solver):
        nested_components = {"helper": "time warp"}

        def solve(self, f, x0, grid, on_step=None):
            return x0

    with temporary_registrations():
        SOLVERS.register("_bad_nested")(Bad)
        with pytest.raises(RegistryError, match="unknown kind 'time warp'.*kinds: .*solver"):
            SOLVERS.nested("_bad_nested")


def test_component_nodes_in_every_written_form():
    assert parse_component("heun") == ComponentSpec("heun", {})
    node = OmegaConf.create(
        {"s": 3.0, "solver": {"name": "heun", "params": {"final_euler": "${flag}"}}, "flag": True}
    )
    spec = parse_component(node.solver)
    assert spec == ComponentSpec("heun", {"final_euler": True}) and type(spec.params) is dict

    class Schema:  # the recipe schema's Component dataclass has these two attributes
        name, params = "shift", {"s": 2.0}

    assert parse_component(Schema()) == ComponentSpec("shift", {"s": 2.0})
    missing = OmegaConf.create(
        {"name": "image", "params": {"autoencoder": {"name": "ae", "params": {"path": "???"}}}}
    )
    assert (
        parse_component(missing).params["autoencoder"]["params"]["path"] == "???"
    )  # the codec says what is missing
    with pytest.raises(ValueError, match="only `name` and `params`.*final_euler"):
        parse_component({"name": "heun", "final_euler": True}, "solver")
    with pytest.raises(ValueError, match="params of solver 'heun' must be a mapping"):
        parse_component({"name": "heun", "params": [1]}, "solver")
    with pytest.raises(ValueError, match=r"a solver is named as a string or as \{name"):
        parse_component({"params": {}}, "solver")


def test_heun_with_params_is_heun_edm_and_integrates_the_known_answer():
    """dx/dt = -x from t = 0 to 1: x(1) = x0 e^-1. The alias and the params node are the same solver."""
    x0 = torch.ones(2, 3, dtype=torch.float64)
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    by_params, nfe_p = integrate(lambda x, t: -x, x0, grid, {"name": "heun", "params": {"final_euler": True}})
    by_alias, nfe_a = integrate(lambda x, t: -x, x0, grid, "heun_edm")
    plain, nfe_h = integrate(lambda x, t: -x, x0, grid, "heun")
    assert torch.equal(by_params, by_alias) and nfe_p == nfe_a == 2 * 7 + 1 and nfe_h == 16
    assert abs(float(plain[0, 0]) - math.exp(-1)) < 2e-3  # order 2 at h = 1/8
    assert abs(float(by_params[0, 0]) - math.exp(-1)) < 2e-2
    assert not torch.equal(by_params, plain)
    node = OmegaConf.create({"name": "heun", "params": {"final_euler": True}})  # as a recipe hands it over
    solution = integrate(lambda x, t: -x, x0, grid, node)
    assert torch.equal(solution.x, by_alias) and solution.nfe == nfe_a


def test_a_new_solver_is_one_class_in_one_file():
    """A user's solver: subclass, register, name it in a {name, params} node - nothing else to touch."""

    class Ralston(Solver):  # second-order Runge-Kutta with the minimum error bound
        name = "ralston"

        def __init__(self, alpha: float = 2.0 / 3.0) -> None:
            self.alpha = alpha

        def solve(self, f, x0, grid, on_step=None):
            x = x0
            for i in range(grid.numel() - 1):
                if on_step is not None:
                    on_step(i)
                h, a = grid[i + 1] - grid[i], self.alpha
                k1 = f(x, grid[i])
                k2 = f(x + a * h * k1, grid[i] + a * h)
                x = x + h * ((1 - 1 / (2 * a)) * k1 + 1 / (2 * a) * k2)
            return x

    with temporary_registrations():
        SOLVERS.register("ralston")(Ralston)
        x0 = torch.ones(1, dtype=torch.float64)
        grid = torch.linspace(0, 1, 17, dtype=torch.float64)
        x, nfe = integrate(lambda x, t: -x, x0, grid, {"name": "ralston", "params": {"alpha": 0.5}})
        mid, _ = integrate(lambda x, t: -x, x0, grid, "midpoint")  # alpha 1/2 is the midpoint rule
        assert nfe == 32 and torch.allclose(x, mid, rtol=0, atol=1e-12)
        assert list(SOLVERS.signature("ralston").parameters) == ["alpha"]


def test_with_defaults_configures_a_constructor_without_redeclaring_it():
    class Base:
        def __init__(self, a: int, b: float = 1.0, *, c: str = "x") -> None:
            self.args = (a, b, c)

    class Configured(Base):
        __init__ = with_defaults(Base.__init__, b=2.5, c="y")

    assert Configured(1).args == (1, 2.5, "y") and Configured(1, 3.0, c="z").args == (1, 3.0, "z")
    assert Base(1).args == (1, 1.0, "x")  # the base keeps its own defaults
    sig = inspect.signature(Configured)
    assert (sig.parameters["b"].default, sig.parameters["c"].default) == (2.5, "y")
    with pytest.raises(TypeError, match="no parameter with a default named 'a'"):
        with_defaults(Base.__init__, a=3)
    with pytest.raises(TypeError, match="'d'.*parameters with defaults: b, c"):
        with_defaults(Base.__init__, d=3)


def test_build_solver_refuses_what_is_not_a_solver():
    with pytest.raises(ValueError, match="a solver is a registered name"):
        integrate(lambda x, t: x, torch.zeros(1), [0.0, 1.0], solver=3)

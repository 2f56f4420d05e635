"""SamplingSettings: a recipe's sampling section built once into typed, frozen components."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from fixtures.toy_plugin import OracleModel, SeqPlugin
from omegaconf import OmegaConf

from lumina_core.config.schema import SamplingConfig
from lumina_core.model.context_drop import ContextDrop
from lumina_core.model.rope import RopeScaling
from lumina_core.sampling import AdamsBashforth2, Euler, Guidance, SamplingSettings, generate
from lumina_core.sampling.grids import ExplicitGrid, ShiftGrid, SigmoidGrid


def test_the_schema_defaults_build_into_components():
    s = SamplingSettings.from_config(SamplingConfig())
    assert isinstance(s.solver, AdamsBashforth2) and isinstance(s.grid, SigmoidGrid) and s.steps == 16
    assert s.guidance == Guidance() and not s.guidance.active
    assert (s.rope_scaling, s.context_drop, s.seed, s.precision) == (None, None, 0, "fp32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 3  # type: ignore[misc]


def test_an_omegaconf_section_builds_every_component_once():
    section = OmegaConf.merge(
        OmegaConf.structured(SamplingConfig),
        {
            "solver": {"name": "euler"},
            "grid": {"name": "shift", "params": {"s": 3.0}},
            "cfg_scale": 4,
            "cfg_trunc": 0.5,
            "cfg_renorm": 1.0,
            "rope_scaling": {"name": "ntk", "params": {"ntk_mode": "dd2", "proportional_attention": True}},
            "context_drop": {"factor": [2, 1], "schedule": "all"},
        },
    )
    s = SamplingSettings.from_config(section)
    assert isinstance(s.solver, Euler) and isinstance(s.grid, ShiftGrid) and s.grid.s == 3.0
    assert s.guidance == Guidance(scale=4.0, trunc=0.5, renorm=1.0) and s.guidance.active
    assert s.rope_scaling == RopeScaling("ntk", proportional_attention=True, params={"ntk_mode": "dd2"})
    assert s.context_drop == ContextDrop(factor=(2, 1), schedule="all")
    assert s.describe("solver", "steps") == {"solver": {"name": "euler", "params": {}}, "steps": 16}


@pytest.mark.parametrize(
    "form",
    [
        "time_aware",
        {"name": "time_aware", "params": {}},
        OmegaConf.create({"name": "time_aware", "params": {"scale_mode": "axis"}}),
        RopeScaling("time_aware"),
    ],
    ids=["name", "node", "omegaconf-node", "built"],
)
def test_the_four_forms_of_rope_scaling_normalise_to_the_same_scaling(form):
    assert SamplingSettings.build(rope_scaling=form).rope_scaling == RopeScaling("time_aware")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"precision": "half"}, "sampling precision must be one of"),
        ({"cfg_trunc": 1.5}, "cfg_trunc is the flow time"),
        ({"cfg_renorm": 0.0}, "cfg_renorm clips"),
        ({"rope_scaling": "yarn"}, "kind must be one of"),
        ({"context_drop": {"factor": 0}}, "invalid context_drop"),
        ({"steps": 0}, "steps must be a positive whole number"),
        ({"stepz": 3}, r"unknown sampling settings \['stepz'\]"),
    ],
)
def test_bad_settings_fail_when_built_before_any_model_call(values, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings.build(**values)


def test_overrides_make_a_new_object_and_keep_the_rest():
    base = SamplingSettings.build(steps=8, cfg_scale=2.0, seed=5)
    more = base.with_overrides(steps=4, solver="euler", cfg_scale=None)
    assert (base.steps, more.steps, more.guidance.scale, more.seed) == (8, 4, 2.0, 5)
    assert isinstance(more.solver, Euler) and not isinstance(base.solver, Euler)
    assert base.with_overrides() is base and base.with_seed(9).seed == 9 and base.seed == 5
    explicit = base.with_overrides(grid={"name": "explicit", "params": {"values": [0.0, 0.3, 1.0]}})
    assert isinstance(explicit.grid, ExplicitGrid) and explicit.steps is None  # the grid brings its own steps


def test_generate_with_settings_equals_generate_with_the_same_keywords():
    plugin, model = SeqPlugin(channels=2, patch=2), OracleModel(mu=0.5, std=0.3)
    shapes = [(2, 16), (2, 8)]
    settings = SamplingSettings.build(
        steps=5, solver="midpoint", grid={"name": "shift", "params": {"s": 2.0}}, seed=7
    )
    a = generate(model, plugin, None, "seq", None, shapes, settings)
    b = generate(
        model, plugin, None, "seq", None, shapes, steps=5, solver="midpoint", grid=settings.grid, seed=7
    )
    c = generate(model, plugin, None, "seq", None, shapes, settings, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_a_multistep_solver_in_shared_settings_starts_fresh_on_every_generation():
    plugin, model = SeqPlugin(), OracleModel()
    settings = SamplingSettings.build(steps=4, solver="ab2", seed=1)
    first = generate(model, plugin, None, "seq", None, [(2, 16)], settings)
    again = generate(model, plugin, None, "seq", None, [(2, 16)], settings)
    assert torch.equal(first[0], again[0])


def test_times_given_as_a_tensor_or_list_are_an_explicit_grid_with_their_own_steps():
    for times in (torch.tensor([0.0, 0.25, 1.0]), [0.0, 0.25, 1.0]):
        s = SamplingSettings.build(grid=times, steps=16)
        assert (
            isinstance(s.grid, ExplicitGrid)
            and s.steps is None
            and s.grid.values.tolist() == [0.0, 0.25, 1.0]
        )


def test_settings_made_from_components_take_overrides_too():
    from lumina_core.sampling.grids import UniformGrid

    s = SamplingSettings(solver=Euler(), grid=UniformGrid(), steps=4, guidance=Guidance(scale=2.0))
    t = s.with_overrides(steps=6)
    assert (
        t.steps == 6
        and t.solver is s.solver
        and t.guidance.scale == 2.0
        and s.describe("steps") == {"steps": 4}
    )

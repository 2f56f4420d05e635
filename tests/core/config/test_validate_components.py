"""Validation walks the schema's component fields generically and never evaluates annotation strings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from fixtures.toy_plugin import seq_task

from lumina_core.config import schema, validate
from lumina_core.config.schema import Component, RecipeConfig, builds, registered
from lumina_core.config.typed import component_fields
from lumina_core.config.validate import _walk_components, validate_recipe


def _schema_classes(cls: type) -> list[type]:
    out = [cls]
    for kind in component_fields(cls).values():
        if kind != "component":
            out += _schema_classes(kind)
    return out


def test_every_schema_field_that_holds_components_says_which_registry_names_them():
    from lumina_core import registry

    declared = []
    for cls in _schema_classes(RecipeConfig):
        for f in dataclasses.fields(cls):
            if component_fields(cls).get(f.name) == "component":
                assert "registry" in f.metadata, (
                    f"{cls.__name__}.{f.name} holds components but names no registry"
                )
                assert getattr(registry, f.metadata["registry"]).kind  # a real registry
                declared.append(f"{cls.__name__}.{f.name}")
    assert {"TaskConfig.modality", "SamplingConfig.rope_scaling", "TrainConfig.composition"} <= set(declared)


@dataclass
class _Stage:
    solver: Component = registered("SOLVERS", lambda: Component(name="euler"))
    scaling: Component | None = registered("ROPE_SCALINGS")
    drop: dict | None = builds("lumina_core.model.context_drop:ContextDrop")


@dataclass
class _Plan:
    stages: list[_Stage] = field(default_factory=list)
    methods: list[Component] = registered("COMPOSITIONS", list)


def test_a_new_schema_with_components_anywhere_is_checked_without_naming_its_paths():
    tree = {
        "stages": [
            {"solver": {"name": "euler", "params": {}}, "scaling": None, "drop": None},
            {
                "solver": {"name": "eulr", "params": {}},
                "scaling": {"name": "ntk", "params": {"ntk_mod": "dd2"}},
                "drop": {"factor": 2, "untill": 0.5},
            },
        ],
        "methods": [{"name": "pcgrd", "params": {}}],
    }
    problems: list[str] = []
    found: dict = {}
    _walk_components(tree, _Plan, "", problems, found)
    assert [p.split(":")[0] for p in problems] == [
        "stages.1.solver.name",
        "stages.1.scaling.params.ntk_mod",
        "stages.1.drop.untill",
        "methods.0.name",
    ]
    assert "did you mean 'ntk_mode'" in problems[1] and "did you mean 'until'" in problems[2]
    assert found["stages.0.solver"].name == "euler" and found["stages.1.solver"] is None


def test_annotations_are_read_without_eval(monkeypatch):
    """The RoPE scaling's shared settings and the rule's own parameters are type-checked, while any ``eval`` the
    validator itself would call fails (the old code eval'ed annotation strings and so skipped these checks)."""

    def no_eval(*args, **kwargs):
        raise AssertionError("validation evaluated a string")

    monkeypatch.setattr(validate, "eval", no_eval, raising=False)
    task = seq_task()
    task["sampling"]["rope_scaling"] = {
        "name": "time_aware_stepwise",
        "params": {"scale_mode": 3, "threshold": "late", "proportional_attention": "yes"},
    }
    problems = validate_recipe({"tasks": [task]})
    base = "tasks.0.sampling.rope_scaling.params"
    assert problems == [
        f"{base}.scale_mode: expected str, got 3 (int)",
        f"{base}.threshold: expected float, got 'late' (str)",
        f"{base}.proportional_attention: expected bool, got 'yes' (str)",
    ]


@pytest.mark.parametrize(
    ("drop", "message"),
    [({"factr": 2}, "context_drop.factr: context_drop does not take a parameter 'factr'"),
     ({"factor": 0}, "context_drop: invalid context_drop: factor must be a positive int")],
)  # fmt: skip
def test_a_mapping_that_builds_a_class_is_checked_against_it(drop, message):
    task = seq_task()
    task["sampling"]["context_drop"] = drop
    (problem,) = validate_recipe({"tasks": [task]})
    assert (
        problem.startswith("tasks.0.sampling." + message.split(": ")[0])
        and message.split(": ", 1)[1] in problem
    )


def test_the_schema_helpers_keep_defaults():
    assert (
        schema.SamplingConfig().solver == Component(name="ab2")
        and schema.SamplingConfig().rope_scaling is None
    )
    assert schema.TrainConfig().composition == [] and schema.TaskConfig().modality == Component()

"""Recipes: loading over the schema, key=value overrides, and validation that reports every problem at once."""

from __future__ import annotations

import textwrap

import pytest
from fixtures.stubs import ValidationOnlyDataset, ValidationOnlyPlugin
from omegaconf import DictConfig

from lumina_core.config import RecipeError, load_recipe, recipe_header_command, validate_recipe
from lumina_core.registry import DATASETS, MODALITIES


@MODALITIES.register("_cfg_seq", override=True)
class CfgSeqPlugin(ValidationOnlyPlugin):
    name = "_cfg_seq"
    conditions = frozenset({"class", "none"})

    def __init__(self, channels: int = 1, patch: int = 4) -> None:
        self.channels, self.patch = channels, patch


@MODALITIES.register("_cfg_textonly", override=True)
class CfgTextOnly(ValidationOnlyPlugin):
    name = "_cfg_textonly"
    conditions = frozenset({"text"})

    def __init__(self) -> None:
        pass


@DATASETS.register("_cfg_waves", override=True)
class CfgWaves(ValidationOnlyDataset):
    modality = "_cfg_seq"
    condition_kind = "class"

    def __init__(self, size: int = 8, num_classes: int = 3, seed: int = 0, split: str = "train") -> None:
        self.size = size


GOOD = """\
# Run: lumina train recipes/test/good.yaml
run: {name: good}
model: {dim: 64, n_layers: 2, n_heads: 4, multiple_of: 32}
tasks:
  - name: seq
    modality: {name: _cfg_seq, params: {channels: 2}}
    data: {name: _cfg_waves, params: {size: 16}, val_params: {seed: 1}, batch_size: 4}
    objective: {name: flow_matching, params: {time_sampler: {name: logit_normal, params: {}}}}
    conditioning: {encoder: {name: class, params: {num_classes: 3, dim: 64}}}
    sampling: {solver: midpoint, grid: {name: shift, params: {s: 4}}, steps: 8}
train: {max_steps: 20, lr: 1.0e-3}
"""


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_recipe_loads_over_schema_defaults(tmp_path):
    cfg = load_recipe(write(tmp_path, GOOD))
    assert isinstance(cfg, DictConfig)
    assert cfg.tasks[0].data.batch_size == 4
    assert cfg.tasks[0].loss_weight == 1.0  # schema default
    assert cfg.tasks[0].conditioning.drop_prob == 0.1
    assert cfg.train.ema_decay == 0.9999
    assert cfg.run.output_dir == "runs/good"  # interpolation over the schema default
    assert validate_recipe(cfg) == []


def test_overrides_dotted_with_list_indices_and_yaml_values(tmp_path):
    cfg = load_recipe(
        write(tmp_path, GOOD),
        [
            "tasks.0.data.batch_size=8",
            "train.lr=1e-4",
            "run.name=other",
            "tasks.0.data.params.size=32",
            "~tasks.0.data.val_params.seed",
            "model.n_kv_heads=2",
        ],
    )
    assert cfg.tasks[0].data.batch_size == 8
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.run.output_dir == "runs/other"
    assert cfg.tasks[0].data.params.size == 32
    assert "seed" not in cfg.tasks[0].data.val_params
    assert cfg.model.n_kv_heads == 2


def test_every_problem_is_reported_at_once(tmp_path):
    bad = """\
    run: {name: bad, seeed: 3}
    model: {dim: "wide", n_layers: 2}
    tasks:
      - name: seq
        modality: {name: _cfg_sek, params: {chanels: 2}}
        data: {name: _cfg_wave, batch_size: 4, batchsize: 3}
        objective: {name: flow_matching, params: {time_sampler: {name: logit_normall}}}
        conditioning: {encoder: {name: clas}}
        sampling: {solver: midpoitn, grid: {name: shfit}}
      - modality: {name: _cfg_seq, params: {patch: "four"}}
        data: {name: _cfg_waves, params: {sise: 3}}
        sampling: {grid: {name: shift, params: {ss: 4}}}
        loss_weight: -1
    train: {max_steps: 10, lr: "fast"}
    """
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, bad), ["train.warmup_steps=many", "tasks.5.loss_weight=1", "novalue"])
    problems = err.value.problems
    text = "\n".join(problems)
    expected = [
        "run.seeed: unknown key; did you mean 'seed'?",
        "model.dim: expected int, got 'wide'",
        "tasks.0.data.batchsize: unknown key; did you mean 'batch_size'?",
        "tasks.0.modality.name: unknown modality '_cfg_sek'; did you mean '_cfg_seq'",
        "tasks.0.data.name: unknown dataset '_cfg_wave'; did you mean '_cfg_waves'",
        "tasks.0.objective.params.time_sampler.name: unknown time sampler 'logit_normall'; did you mean 'logit_normal'",
        "tasks.0.conditioning.encoder.name: unknown conditioner 'clas'; did you mean 'class'",
        "tasks.0.sampling.solver.name: unknown solver 'midpoitn'; did you mean 'midpoint'",
        "tasks.0.sampling.grid.name: unknown time grid 'shfit'; did you mean 'shift'",
        "tasks.1.name: missing required value (???)",
        "tasks.1.modality.params.patch: expected int, got 'four'",
        "tasks.1.data.params.sise: dataset '_cfg_waves' does not take a parameter 'sise'; did you mean 'size'?",
        "tasks.1.sampling.grid.params.ss: time grid 'shift' does not take a parameter 'ss'",
        "tasks.1.loss_weight: must be at least 0",
        "train.lr: expected float, got 'fast'",
        "train.warmup_steps: expected int, got 'many'",
        "override 'tasks.5.loss_weight=1': tasks has 2 item(s); there is no index 5",
        "override 'novalue': expected key=value",
    ]
    for e in expected:
        assert e in text, f"missing problem {e!r} in:\n{text}"
    assert len(problems) == len(expected), text
    assert str(err.value).startswith(f"{tmp_path / 'r.yaml'}: {len(expected)} problems:")


def test_modality_params_are_checked_against_the_constructor(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(RecipeError, match=r"does not take a parameter 'chanels'; did you mean 'channels'"):
        load_recipe(path, ["tasks.0.modality.params.chanels=3"])


def test_multi_task_recipe_and_duplicate_names(tmp_path):
    two = GOOD.replace(
        "train: {max_steps: 20, lr: 1.0e-3}\n",
        "  - name: seq2\n"
        "    modality: {name: _cfg_seq}\n"
        "    data: {name: _cfg_waves}\n"
        "    loss_weight: 0.5\n"
        "train: {max_steps: 20}\n",
    )
    cfg = load_recipe(write(tmp_path, two))
    assert [t.name for t in cfg.tasks] == ["seq", "seq2"] and cfg.tasks[1].loss_weight == 0.5
    assert cfg.tasks[1].objective.name == "flow_matching"  # per-task defaults
    with pytest.raises(RecipeError, match="already used by tasks.0"):
        load_recipe(write(tmp_path, two, "dup.yaml"), ["tasks.1.name=seq"])


def test_empty_tasks_and_bad_interpolation(tmp_path):
    text = "run: {name: x, output_dir: 'runs/${run.nme}'}\ntasks: []\n"
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, text))
    text = "\n".join(err.value.problems)
    assert "at least one task" in text
    assert "interpolation" in text


def test_condition_kind_must_be_accepted_by_the_modality(tmp_path):
    with pytest.raises(
        RecipeError, match="gives 'class' conditions, but modality '_cfg_textonly' accepts text"
    ):
        load_recipe(
            write(tmp_path, GOOD),
            [
                "tasks.0.modality.name=_cfg_textonly",
                "tasks.0.modality.params={}",
                "tasks.0.data.name=_cfg_waves",
            ],
        )


def test_dataset_of_another_modality_is_flagged(tmp_path):
    with pytest.raises(RecipeError, match="yields '_cfg_seq' samples"):
        load_recipe(
            write(tmp_path, GOOD),
            [
                "tasks.0.modality.name=_cfg_textonly",
                "tasks.0.modality.params={}",
                "tasks.0.conditioning.encoder={name: none}",
            ],
        )


def test_a_bare_name_is_short_for_a_component_and_a_wrong_form_shows_the_expected_one(tmp_path):
    cfg = load_recipe(write(tmp_path, GOOD), ["tasks.0.sampling.solver=heun", "tasks.0.sampling.grid=uniform"])
    assert cfg.tasks[0].sampling.solver == {"name": "heun", "params": {}}
    assert cfg.tasks[0].sampling.grid.name == "uniform"
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, GOOD), ["tasks.0.modality=3"])
    assert err.value.problems == [
        "tasks.0.modality: expected a registered component {name: ..., params: {...}}, got 3 (int)"
    ]


def test_missing_file_and_not_a_mapping(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(write(tmp_path, "- 1\n- 2\n"))


def test_validate_recipe_on_plain_dict():
    problems = validate_recipe(
        {
            "tasks": [{"name": "a", "modality": {"name": "_cfg_seq"}, "data": {"name": "_cfg_waves"}}],
            "train": {"max_step": 3},
        }
    )
    assert problems == ["train.max_step: unknown key; did you mean 'max_steps'?"]


def test_header_command(tmp_path):
    assert recipe_header_command(write(tmp_path, GOOD)) == "lumina train recipes/test/good.yaml"
    assert recipe_header_command(write(tmp_path, "run: {name: x}\n", "n.yaml")) is None


def test_unknown_name_without_installed_core_says_how_to_install(tmp_path, monkeypatch):
    from lumina_core import registry

    monkeypatch.setattr(registry, "core_installed", lambda: False)
    with pytest.raises(RecipeError, match=r"'lumina' distribution is not installed.*pip install -e \."):
        load_recipe(write(tmp_path, GOOD), ["tasks.0.modality.name=_cfg_nothing"])


def test_a_named_component_does_not_inherit_the_default_components_params(tmp_path):
    """The schema's default grid must not leak its params into the grid a recipe names instead."""
    from lumina_core.registry import TIME_GRIDS

    text = GOOD.replace("grid: {name: shift, params: {s: 4}}", "grid: {name: uniform}")
    cfg = load_recipe(write(tmp_path, text))
    grid = cfg.tasks[0].sampling.grid
    assert grid.name == "uniform" and dict(grid.params) == {}
    TIME_GRIDS.build({"name": grid.name, "params": dict(grid.params)})  # builds, as the sampler will


def test_params_for_a_component_without_a_constructor_are_reported(tmp_path):
    text = GOOD.replace("grid: {name: shift, params: {s: 4}}", "grid: {name: uniform, params: {s: 0.5}}")
    with pytest.raises(RecipeError, match=r"sampling\.grid\.params\.s: time grid 'uniform' does not take"):
        load_recipe(write(tmp_path, text))


def test_a_mapping_override_merges_but_another_component_replaces_the_node(tmp_path):
    """``encoder={name: class, ...}`` over a MiniLM encoder must not inherit ``max_length`` (it failed with
    'conditioner class does not take max_length'); the same component's mapping still merges."""
    path = write(tmp_path, GOOD.replace("{name: class, params: {num_classes: 3, dim: 64}}",
                                        "{name: class, params: {num_classes: 3, dim: 64, init_std: 0.5}}"))
    same = load_recipe(path, ["tasks.0.conditioning.encoder={name: class, params: {num_classes: 3}}"])
    assert dict(same.tasks[0].conditioning.encoder.params) == {"num_classes": 3, "dim": 64, "init_std": 0.5}
    other = load_recipe(path, ["tasks.0.conditioning.encoder={name: none}"])
    assert other.tasks[0].conditioning.encoder.name == "none" and not other.tasks[0].conditioning.encoder.params
    merged = load_recipe(path, ["train={lr: 0.01}"])
    assert merged.train.lr == 0.01 and merged.train.max_steps == 20


"""TaskFacts: what a recipe task is, read from its typed section alone (nothing built but the objective)."""

from __future__ import annotations

from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.config.typed import typed_recipe
from lumina_core.training.task_facts import TaskFacts, condition_kind_of, objective_generates


def _task_config(tmp_path, task: dict):
    return typed_recipe(tiny_recipe(tmp_path, [task])).tasks[0]


def test_a_class_conditioned_generative_task(tmp_path):
    facts = TaskFacts.of(
        _task_config(
            tmp_path, {**seq_task("a"), "sampling": {"steps": 5, "seed": 3, "solver": {"name": "euler"}}}
        )
    )
    assert (facts.name, facts.modality, facts.generative) == ("a", "_test_seq", True)
    assert (facts.condition_kind, facts.num_classes) == ("class", 4)
    assert facts.sampling_defaults["steps"] == 5 and facts.sampling_defaults["seed"] == 3
    assert facts.sampling_defaults["solver"] == "euler"


def test_an_unconditional_classifier(tmp_path):
    cls = {
        **seq_task("c", conditioned=False),
        "objective": {"name": "classification", "params": {"classes": 4}},
    }
    config = _task_config(tmp_path, cls)
    facts = TaskFacts.of(config)
    assert not facts.generative and facts.condition_kind == condition_kind_of(config) == "none"
    assert facts.num_classes is None  # the classifier's classes are the objective's, not a class table's


def test_an_objective_that_says_nothing_generates():
    class Plain:  # an objective without the attribute: flow matching's default
        pass

    class Classifier:
        generative = False

    assert objective_generates(Plain()) and not objective_generates(Classifier())

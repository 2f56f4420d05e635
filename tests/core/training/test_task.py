"""The Task: what a built recipe task says about itself, its datasets and evaluation splits, its sampling
settings, one training loss and one generate loop (on the toy 1-D plugin and a real trunk)."""

from __future__ import annotations

import pytest
import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.training.build import build_run


def _run(tmp_path, *tasks: dict):
    return build_run(tiny_recipe(tmp_path, list(tasks) or None))


def test_facts_come_from_the_typed_recipe_and_the_built_parts(tmp_path):
    task_cfg = {**seq_task("a"), "loss_weight": 0.5, "draw_weight": 3.0}
    parts = _run(tmp_path, task_cfg, seq_task("b", conditioned=False))
    a, b = parts.tasks["a"], parts.tasks["b"]
    assert (a.name, a.loss_weight, a.draw_weight, a.batch_size) == ("a", 0.5, 3.0, 6)
    assert a.generative and a.context_dim == 16 and b.context_dim is None
    assert repr(a) == f"Task('a', modality='_test_seq', conditioner={a.conditioner!r})"


def test_datasets_per_split_and_condition_kind_refusal(tmp_path):
    parts = _run(tmp_path, seq_task("a"), {**seq_task("b", conditioned=False), "name": "b"})
    train, val = parts.tasks["a"].dataset("train"), parts.tasks["a"].dataset("val")
    assert len(train) == 24 and train.split == "train" and val.split == "val"
    assert not torch.equal(train[0]["sample"], val[0]["sample"])  # another stream for held-out items
    mismatched = _run(
        tmp_path, {**seq_task("c", conditioned=False), "conditioning": seq_task()["conditioning"]}
    )
    with pytest.raises(ValueError, match="task 'c'"):
        mismatched.tasks["c"].dataset("train", check_condition_kind=True)


def test_eval_splits_plain_and_swept(tmp_path):
    plain = _run(tmp_path).tasks["seq"]
    assert [suffix for suffix, _ in plain.eval_splits()] == [""]
    swept = _run(tmp_path, {**seq_task(), "eval": {"sweep": {"size": [4, 8]}}}).tasks["seq"]
    assert [(suffix, len(ds)) for suffix, ds in swept.eval_splits()] == [("@size=4", 4), ("@size=8", 8)]
    two = _run(tmp_path, {**seq_task(), "eval": {"sweep": {"size": [4], "seed": [1]}}}).tasks["seq"]
    with pytest.raises(ValueError, match="one dataset parameter"):
        list(two.eval_splits())


def test_sampling_settings_take_overrides_and_refuse_unknown_ones(tmp_path):
    task = _run(tmp_path).tasks["seq"]
    settings = task.sampling_settings(steps=7, cfg_scale=None)
    assert settings.steps == 7 and settings.guidance.scale == float(task.config.sampling.cfg_scale)
    assert settings.solver.name == "euler" and settings.describe("solver")["solver"]["name"] == "euler"
    assert task.sampling.steps == int(task.config.sampling.steps)  # the task's own settings are unchanged
    assert task.sampling is task.sampling  # built once
    with pytest.raises(ValueError, match=r"unknown sampling settings \['stepz'\]"):
        task.sampling_settings(stepz=3)


def test_loss_is_a_scalar_fixed_by_the_generator(tmp_path):
    parts = _run(tmp_path)
    task = parts.tasks["seq"]
    data = task.dataset("train")
    items = [data[i] for i in range(4)]
    batch = {"samples": [it["sample"] for it in items], "conditions": [it["condition"] for it in items],
             "meta": [it["meta"] for it in items]}  # fmt: skip
    first = task.loss(parts.model, batch, torch.Generator().manual_seed(3))
    again = task.loss(parts.model, batch, torch.Generator().manual_seed(3))
    other = task.loss(parts.model, batch, torch.Generator().manual_seed(4))
    assert first.dim() == 0 and torch.equal(first, again) and not torch.equal(first, other)
    first.backward()
    assert any(p.grad is not None for p in parts.model.parameters())


def test_a_samples_noise_does_not_depend_on_how_many_are_asked_for(tmp_path):
    parts = _run(tmp_path)
    task = parts.tasks["seq"]
    parts.model.eval()
    with torch.no_grad():
        five = task.generate(parts.model, [0, 1, 2, 3, 0], shapes=[(2, 16)] * 5, batch_size=2)
        two = task.generate(parts.model, [0, 1], shapes=[(2, 16)] * 2, batch_size=2)
    assert [tuple(x.shape) for x in five] == [(2, 16)] * 5 and all(x.dtype == torch.float32 for x in five)
    assert torch.equal(five[0], two[0]) and torch.equal(five[1], two[1])
    calls = []
    task.generate(parts.model, [0, 1, 2], shapes=[(2, 8)] * 3, batch_size=2,
                  on_batch=lambda start, batch, seed: calls.append((start, len(batch), seed)))  # fmt: skip
    base = int(task.config.sampling.seed)
    assert calls == [(0, 2, base), (2, 1, base + 2)]


def test_a_classification_task_generates_nothing(tmp_path):
    classify = {**seq_task("cls"), "objective": {"name": "classification", "params": {"classes": 4}}}
    task = _run(tmp_path, classify).tasks["cls"]
    assert not task.generative
    with pytest.raises(ValueError, match="classification task: it generates nothing"):
        task.generate(None, [0])


def test_facts_are_properties_read_through_task_facts(tmp_path):
    from lumina_core.training.task_facts import TaskFacts

    parts = _run(tmp_path, seq_task("a"), seq_task("b", conditioned=False))
    a, b = parts.tasks["a"], parts.tasks["b"]
    assert (a.condition_kind, a.null_condition) == ("class", 4)  # the class table's null row
    assert (b.condition_kind, b.null_condition) == ("none", None)
    assert a.facts == TaskFacts.of(a.config)  # built or not, one reading of the recipe
    assert a.facts.num_classes == 4 and b.facts.num_classes is None


def test_evaluate_a_generative_task_scores_its_samples_and_keeps_each_verdict(tmp_path):
    parts = _run(tmp_path)
    task = parts.tasks["seq"]
    parts.model.eval()
    val = task.dataset("val")
    items = [val[i] for i in range(3)]
    landed = []
    with torch.no_grad():
        result = task.evaluate(parts.model, items, val, on_batch=lambda s, b, seed: landed.append(len(b)), steps=3)
    assert set(result.scores) == set(task.plugin.evaluate(result.samples, items, val))
    assert len(result.samples) == 3 and [tuple(x.shape) for x in result.samples] == task.shapes_of(items)
    assert result.settings.steps == 3 and result.details is None and landed == [3]
    # every sample graded once, alone: its verdict is the checker's score of that sample on its own
    assert result.verdicts is not None and len(result.verdicts) == 3
    for x, item, verdict in zip(result.samples, items, result.verdicts, strict=True):
        assert verdict == pytest.approx(val.score([x], [item]))


def test_evaluate_a_recognition_task_scores_the_items_themselves(tmp_path):
    classify = {
        **seq_task("cls"),
        "conditioning": {"encoder": {"name": "none"}},
        "objective": {"name": "classification", "params": {"classes": 4}},
    }
    parts = _run(tmp_path, classify)
    task = parts.tasks["cls"]
    parts.model.eval()
    val = task.dataset("val")
    items = [val[i] for i in range(8)]
    with torch.no_grad():
        result = task.evaluate(parts.model, items, val)
    assert 0.0 <= result.scores["accuracy"] <= 1.0 and result.samples is None and result.verdicts is None
    confusion = torch.as_tensor(result.details["confusion"])
    assert confusion.shape == (4, 4) and int(confusion.sum()) == 8  # every item classified once


def test_example_conditions_are_distinct_held_out_conditions(tmp_path):
    parts = _run(tmp_path, seq_task("a"), seq_task("b", conditioned=False))
    examples = parts.tasks["a"].example_conditions(limit=3)
    val = parts.tasks["a"].dataset("val")
    assert len(examples) == len(set(examples)) == 3
    assert set(examples) <= {str(val[i]["condition"]) for i in range(len(val))}
    assert parts.tasks["b"].example_conditions() == []  # unconditioned items have nothing to show

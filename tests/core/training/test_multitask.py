"""Multi-task composition: the task draw of weighted mixing, per-task conditioner widths on one trunk, exact
resume with weighted mixing, and the recipe problems `config validate` names."""

from __future__ import annotations

import collections

import pytest
import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import load_run, train
from lumina_core.training.data import draw_task


def test_draw_is_a_function_of_seed_and_index_with_the_weights_frequencies():
    weights = [0.5, 0.3, 0.2, 0.0]
    first = [draw_task(weights, 7, i) for i in range(4000)]
    assert first == [draw_task(weights, 7, i) for i in range(4000)]  # no hidden state: same on every rank
    assert first != [draw_task(weights, 8, i) for i in range(4000)]
    counts = collections.Counter(first)
    assert counts[3] == 0  # weight 0 is never drawn
    for k, w in enumerate(weights[:3]):
        assert abs(counts[k] / 4000 - w) < 0.03, counts
    for bad in ([], [0.0, 0.0], [1.0, -0.5]):
        with pytest.raises(ValueError, match="draw weights"):
            draw_task(bad, 0, 0)


def three_tasks() -> list[dict]:
    """Class tables 16 and 8 wide (the second is projected to the trunk's 16) and an unconditional task."""
    wide, narrow = seq_task("wide"), seq_task("narrow")
    narrow["conditioning"]["encoder"]["params"]["dim"] = 8
    free = seq_task("free", conditioned=False, lengths=[8, 16, 12])
    for task, w in zip((wide, narrow, free), (0.5, 0.3, 0.2), strict=True):
        task["draw_weight"] = w
    return [wide, narrow, free]


def test_weighted_mixing_trains_one_drawn_task_per_step_and_projects_other_widths(tmp_path):
    cfg = tiny_recipe(tmp_path / "run", three_tasks(), max_steps=8, ckpt_every=8, mixing="weighted")
    run = train(cfg)
    state = ckpt_io.load_state(run / "checkpoints" / "step_0000008")
    names = ["wide", "narrow", "free"]
    drawn = collections.Counter(names[draw_task([0.5, 0.3, 0.2], 0, i)] for i in range(8))
    assert state["draws"] == 8
    assert state["data_position"] == {n: drawn[n] for n in names}  # only the drawn task's data moves
    weights = ckpt_io.load_weights(run / "checkpoints" / "step_0000008", "model")
    assert tuple(weights["model.adapters.narrow.context_proj.weight"].shape) == (16, 8)
    assert not any(k.startswith(("model.adapters.wide.context_proj", "model.adapters.free.context_proj")) for k in weights)
    loaded = load_run(cfg, "last")
    for name in names:  # every task generates through its own conditioner width
        out = loaded.task(name).generate(loaded.model, [1, 2] if name != "free" else None, [(2, 16)] * 2)
        assert len(out) == 2 and all(torch.isfinite(x).all() for x in out)


def test_weighted_mixing_resumes_bitwise(tmp_path):
    straight = train(tiny_recipe(tmp_path / "a", three_tasks(), max_steps=6, ckpt_every=3, mixing="weighted"))
    first = train(tiny_recipe(tmp_path / "b", three_tasks(), max_steps=3, ckpt_every=3, mixing="weighted"))
    resumed = train(tiny_recipe(tmp_path / "b", three_tasks(), max_steps=6, ckpt_every=3, mixing="weighted"), resume="last")
    assert first == resumed
    a = ckpt_io.load_weights(straight / "checkpoints" / "step_0000006", "model")
    b = ckpt_io.load_weights(resumed / "checkpoints" / "step_0000006", "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    sa = ckpt_io.load_state(straight / "checkpoints" / "step_0000006")
    sb = ckpt_io.load_state(resumed / "checkpoints" / "step_0000006")
    assert sa["data_position"] == sb["data_position"] and sa["draws"] == sb["draws"] == 6


def test_validate_names_every_multitask_problem_at_once(tmp_path):
    from omegaconf import OmegaConf

    from lumina_core.config.validate import validate_recipe

    tasks = three_tasks()
    tasks[1]["name"] = "wide"  # used twice
    tasks[0]["loss_weight"] = -1.0
    tasks[2]["conditioning"]["encoder"] = {"name": "class", "params": {"num_classes": 4}}  # data is unconditional
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path, tasks, mixing="weightd"))
    problems = validate_recipe(cfg, check_build=True)
    text = "\n".join(problems)
    assert "tasks.1.name: task name 'wide' is already used by tasks.0" in text
    assert "tasks.0.loss_weight: must be at least 0" in text
    assert "train.mixing: expected one of all, weighted, got 'weightd' (did you mean 'weighted'?)" in text
    assert (  # the unconditional data under a class conditioner
        "tasks.2.conditioning.encoder: the dataset's items carry 'none' conditions but the conditioner encodes "
        "'class' conditions" in text
    )
    for t in tasks:
        t["draw_weight"] = 0.0
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path, tasks, mixing="weighted"))
    assert any("all 3 task(s) have draw_weight 0" in p for p in validate_recipe(cfg))


def test_a_composed_runs_steps_per_task_end_the_log_and_go_into_metrics(tmp_path, capsys):
    """What each task got of a weighted run: the last line before 'done' and ``task_steps`` in metrics.json."""
    import json

    from omegaconf import OmegaConf

    from lumina_core.cli.main import main

    cfg = tiny_recipe(tmp_path / "run", three_tasks(), max_steps=8, ckpt_every=8, mixing="weighted")
    recipe = tmp_path / "three.yaml"
    OmegaConf.save(cfg, recipe)
    assert main(["train", str(recipe)]) == 0
    names = ["wide", "narrow", "free"]
    drawn = collections.Counter(names[draw_task([0.5, 0.3, 0.2], 0, i)] for i in range(8))
    expected = ", ".join(f"{n} {drawn[n]}" for n in names)
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == f"steps per task: {expected}" and out[-1].startswith("done: run folder")
    assert main(["eval", str(recipe), "tasks.0.eval.num_samples=2", "tasks.1.eval.num_samples=2"]) == 0
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["step"] == 8 and record["task_steps"] == {n: drawn[n] for n in names}

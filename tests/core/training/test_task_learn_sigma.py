"""``tasks[i].learn_sigma`` is a task setting that the core applies to whatever the plugin declares: the
task's final layer predicts ``2 * in_dim`` values per token; training and generation use the first half."""

from __future__ import annotations

import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.config.validate import validate_recipe
from lumina_core.plugin import AdapterSpec


def test_with_learn_sigma_doubles_the_output_only():
    spec = AdapterSpec(in_dim=6, out_dim=6, num_axes=1, axis_split=(1,), train_extent=(8.0,))
    wide = spec.with_learn_sigma()
    assert (wide.in_dim, wide.out_dim, wide.train_extent) == (6, 12, (8.0,))
    assert spec.with_learn_sigma(False) is spec


def test_build_run_applies_the_task_setting_and_the_task_still_trains_and_samples(tmp_path, monkeypatch):
    from lumina_core.sampling import generate
    from lumina_core.training.build import build_run

    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    wide, plain = seq_task("wide"), seq_task("plain")
    wide["learn_sigma"] = True
    assert validate_recipe(dict(tiny_recipe(tmp_path, [wide, plain]))) == []
    parts = build_run(tiny_recipe(tmp_path, [wide, plain]))
    in_dim = parts.task("wide").plugin.adapter_spec().in_dim
    assert parts.task("wide").plugin.adapter_spec().out_dim == in_dim  # the plugin knows nothing of it
    assert parts.model.adapters["wide"].spec.out_dim == 2 * in_dim
    assert parts.model.adapters["plain"].spec.out_dim == in_dim

    task = parts.task("wide")
    batch = {"samples": [torch.randn(task.plugin.default_shape())], "conditions": [1], "meta": [{}]}
    loss = task.loss(parts.model, batch, torch.Generator().manual_seed(0))
    loss.backward()
    grad = parts.model.adapters["wide"].final_layer.linear.weight.grad  # (2 in_dim, dim)
    assert grad[:in_dim].abs().sum() > 0  # the velocity half is trained
    assert torch.equal(grad[in_dim:], torch.zeros_like(grad[in_dim:]))  # the second half is carried only
    with torch.no_grad():
        out = generate(parts.model, task.plugin, task.conditioner, "wide", [0, 1], steps=2, solver="euler")
    assert [tuple(x.shape) for x in out] == [tuple(task.plugin.default_shape())] * 2


def test_learn_sigma_is_not_a_modality_parameter(tmp_path):
    task = seq_task()
    task["modality"] = {"name": "image", "params": {"patch_size": 2, "channels": 1, "image_size": 8,
                                                    "learn_sigma": True}}  # fmt: skip
    task["data"] = {"name": "digits", "params": {"size": 8}, "batch_size": 2}
    problems = validate_recipe(dict(tiny_recipe(tmp_path, [task])))
    assert any("modality.params.learn_sigma" in p and "does not take a parameter 'learn_sigma'" in p
               for p in problems), problems  # fmt: skip


def test_validation_counts_the_doubled_head_against_the_trunk_width(tmp_path):
    task = seq_task()  # 4 values per token
    cfg = tiny_recipe(tmp_path, [task])
    cfg.model.dim = 6
    assert validate_recipe(dict(cfg)) == []
    task["learn_sigma"] = True  # 8 values per token on a 6-wide trunk
    cfg = tiny_recipe(tmp_path, [task])
    cfg.model.dim = 6
    assert any("must predict 8 values per token but the trunk is 6 wide" in p for p in validate_recipe(dict(cfg)))

"""The Lightning training loop end to end on a tiny model: logging, previews, multi-task, evaluate, sample."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import evaluate, load_run, sample, train
from lumina_core.training.data import ResumableSampler
from lumina_core.training.ema import EMA
from lumina_core.training.module import NonFiniteLossError, lr_factor
from lumina_core.training.task import Task


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tasks = [seq_task("cls"), {**seq_task("free", conditioned=False), "loss_weight": 0.5}]
    cfg = tiny_recipe(out, tasks, max_steps=4, ckpt_every=2, preview_every=2, warmup_steps=2)
    return cfg, train(cfg)


def test_run_directory_layout(multitask_run):
    cfg, run_dir = multitask_run
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last").read_text().strip() == "step_0000004"
    for step in (2, 4):
        for task in ("cls", "free"):  # previews every 2 steps for every task, written by the plugin
            assert (run_dir / "previews" / f"{task}_step{step:07d}.csv").is_file()
    state = ckpt_io.load_state(run_dir / "checkpoints" / "step_0000004")  # weights_only=True
    assert state["step"] == 4 and state["data_position"] == {"cls": 4, "free": 4}


def test_tensorboard_has_per_task_losses_grad_norm_lr_and_previews(multitask_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir = multitask_run
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/loss_cls", "train/loss_free", "train/grad_norm", "train/lr"} <= tags
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4]
    # the LR each step used: linear warm-up over 2 steps to 1e-3
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3])
    # total = sum of weight * task loss
    for tot, a, b in zip(
        acc.Scalars("train/loss"), acc.Scalars("train/loss_cls"), acc.Scalars("train/loss_free"), strict=True
    ):
        assert tot.value == pytest.approx(a.value + 0.5 * b.value, rel=1e-5)
    assert {"preview/cls", "preview/free"} <= set(acc.Tags()["histograms"])


def test_checkpoint_holds_trainable_conditioners_and_ema(multitask_run):
    cfg, run_dir = multitask_run
    ck = run_dir / "checkpoints" / "step_0000004"
    w, e = ckpt_io.load_weights(ck, "model"), ckpt_io.load_weights(ck, "ema")
    assert "conditioners.cls.table.weight" in w  # the class table trains with the model
    assert not any(k.startswith("conditioners.free") for k in w)  # "none" has no state
    assert set(w) == set(e)
    assert any(not torch.equal(w[k], e[k]) for k in w)  # the EMA lags the weights
    run = load_run(cfg, ck)
    model, encs = run.model, run.conditioners
    assert not model.training and set(run.tasks) == {"cls", "free"}
    for k, v in model.state_dict().items():  # the EMA weights, exactly
        if f"model.{k}" in e:
            assert torch.equal(v, e[f"model.{k}"]), k
    torch.testing.assert_close(encs["cls"].table.weight, e["conditioners.cls.table.weight"], rtol=0, atol=0)


def test_evaluate_and_sample(multitask_run, tmp_path):
    cfg, run_dir = multitask_run
    metrics = evaluate(cfg, None)
    assert set(metrics) == {"cls/class_acc", "cls/template_mse", "free/class_acc", "free/template_mse"}
    assert all(math.isfinite(v) for v in metrics.values())
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["metrics"] == metrics and saved["step"] == 4
    paths = sample(cfg, "last", ["1", "3"], 2, tmp_path)
    # one file per sample, in the order of the conditions, each named after its condition
    assert [p.read_text().strip().split(",")[0] for p in paths] == ["1", "1", "3", "3"]
    assert [p.name.split("_")[-1].split(".")[0] for p in paths] == ["class-1", "class-1", "class-3", "class-3"]
    with pytest.raises(ValueError, match="integer label"):
        sample(cfg, "last", ["a cat"], 1, tmp_path)


def test_nonfinite_loss_names_step_and_last_checkpoint(tmp_path, monkeypatch):
    original = Task.loss
    calls = []

    def poisoned(self, *args, **kwargs):  # the third step's loss (one task: one call per step) is NaN
        calls.append(1)
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(Task, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*last good checkpoint: .*step_0000002"):
        train(tiny_recipe(tmp_path / "a", max_steps=4, ckpt_every=2))


def test_skip_nonfinite_skips_and_counts(tmp_path, monkeypatch):
    original = Task.loss
    calls = []

    def poisoned(self, *args, **kwargs):  # the second step's loss is infinite, once
        calls.append(1)
        loss = original(self, *args, **kwargs)
        return loss * float("inf") if len(calls) == 2 else loss

    monkeypatch.setattr(Task, "loss", poisoned)
    run = train(tiny_recipe(tmp_path / "b", max_steps=3, ckpt_every=3, skip_nonfinite=True))
    state = ckpt_io.load_state(run / "checkpoints" / "step_0000003")
    assert state["step"] == 3 and state["nonfinite_skipped"] == 1
    assert state["data_position"] == {"seq": 4}  # the skipped step still consumed a batch


def test_bf16_mixed_precision_trains(tmp_path):
    run = train(tiny_recipe(tmp_path, max_steps=2, ckpt_every=2, precision="bf16-mixed", preview_every=0))
    w = ckpt_io.load_weights(run / "checkpoints" / "step_0000002")
    assert all(torch.isfinite(v).all() for v in w.values())
    assert all(v.dtype == torch.float32 for v in w.values())  # master weights stay fp32


def test_lr_schedule():
    assert [lr_factor(s, 4, 20, "constant") for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(4, 4, 20, "cosine") == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(20, 4, 20, "cosine") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="constant' or 'cosine"):
        lr_factor(0, 0, 10, "linear")


def test_ema_update_and_exact_swap():
    w = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"w": w}, decay=0.9)
    with torch.no_grad():
        w.fill_(1.0)
    ema.update({"w": w}, step=100)  # warm-up no longer limits the decay: d = 0.9
    torch.testing.assert_close(ema.shadow["w"], torch.full((3,), 0.1))
    assert ema.decay_at(0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    before = w.detach().clone()
    with ema.swapped_into({"w": w}):
        torch.testing.assert_close(w.detach(), torch.full((3,), 0.1))
    assert torch.equal(w.detach(), before)


def test_resumable_sampler_continues_the_same_stream():
    full = ResumableSampler(10, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(35)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]  # reshuffled each epoch
    for start in (0, 7, 10, 23):
        it = iter(ResumableSampler(10, seed=3, start=start))
        assert [next(it) for _ in range(35 - start)] == stream[start:]

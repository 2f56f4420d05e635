"""train.lora.lr and train.lora.lr_ratio (LoRA+): the factors A at the adapter's learning rate, B at lr_ratio
times it, what train_also trains in full at train.lr; the schedule scales every group alike; a run with them
resumes exactly; bad values are refused by `lumina config validate`."""

from __future__ import annotations

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe

from lumina_core.finetune import LoraSettings, apply_lora, lora_trainable_parameters
from lumina_core.finetune.optim import build_optimizer, lora_param_groups
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import RecipeChangedError, train

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))


def lora_model() -> LuminaModel:
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12), {"img": SPEC})
    apply_lora(model, LoraSettings(rank=2, alpha=4))
    return model


def test_groups_put_a_b_and_the_fully_trained_parameters_at_their_rates():
    named = lora_trainable_parameters(lora_model())
    groups = {g["name"]: g for g in lora_param_groups(named, 1e-3, lora_lr=4e-4, lr_ratio=16)}
    assert {k: g["lr"] for k, g in groups.items()} == pytest.approx({"lora_A": 4e-4, "lora_B": 6.4e-3, "full": 1e-3})
    ids = {k: {id(p) for p in g["params"]} for k, g in groups.items()}
    assert ids["lora_A"] == {id(p) for n, p in named.items() if ".lora_A." in n}
    assert ids["lora_B"] == {id(p) for n, p in named.items() if ".lora_B." in n}
    assert ids["full"] == {id(p) for n, p in named.items() if ".lora_" not in n} and ids["full"]
    # no empty group
    factors = {n: p for n, p in named.items() if ".lora_" in n}
    assert [g["name"] for g in lora_param_groups(factors, 1e-3, lr_ratio=2)] == ["lora_A", "lora_B"]
    # one learning rate for everything: one group, as before these settings (old checkpoints resume)
    plain = lora_param_groups(named, 1e-3, lora_lr=1e-3, lr_ratio=1)
    assert [(g["name"], g["lr"], len(g["params"])) for g in plain] == [("all", 1e-3, len(named))]


def test_one_adamw_step_moves_b_by_lr_ratio_times_what_a_moves():
    """Adam's first step moves every weight by lr * sign(grad) (up to eps): B at lr_ratio * A's learning rate."""
    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(3))
    groups = lora_param_groups({"x.lora_A.default.weight": a, "x.lora_B.default.weight": b}, 1e-3, lr_ratio=8)
    opt = build_optimizer("adamw", groups, 1e-3, (0.9, 0.999), 0.0, "cpu")
    a.grad, b.grad = torch.ones(3), -torch.ones(3)
    opt.step()
    torch.testing.assert_close(a.detach(), torch.full((3,), -1e-3))
    torch.testing.assert_close(b.detach(), torch.full((3,), 8e-3))


@pytest.mark.parametrize("kwargs", [{"lora_lr": 0.0}, {"lora_lr": -1e-3}, {"lr_ratio": 0}, {"lr_ratio": -2.0}])
def test_non_positive_rates_are_refused(kwargs):
    with pytest.raises(ValueError, match=r"train\.lora\.(lr|lr_ratio) must be a positive number"):
        lora_param_groups({}, 1e-3, **kwargs)


def test_config_validate_reports_bad_lora_settings():
    from lumina_core.config.buildcheck import check_buildable

    problems: list[str] = []
    check_buildable({"train": {"lora": {"rank": 0, "alpha": 16.0, "lr_ratio": -1.0}}}, problems)
    assert any(p.startswith("train.lora:") and "rank must be a positive integer" in p for p in problems), problems
    assert any(p.startswith("train.lora.lr_ratio must be a positive number") for p in problems), problems
    problems = []
    check_buildable({"train": {"lora": {"rank": 8, "alpha": 16.0, "lr": 1e-3, "lr_ratio": 16.0}}}, problems)
    assert not any(p.startswith("train.lora") for p in problems), problems


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora_lr") / "base"
    train(tiny_recipe(out, max_steps=3, ckpt_every=3))
    return out / "checkpoints" / "step_0000003"


def lora_plus(out, base_ck, steps):
    lora = {"rank": 2, "alpha": 4.0, "lr": 2e-3, "lr_ratio": 8.0}
    return tiny_recipe(out, max_steps=steps, ckpt_every=2, init_from=str(base_ck), lr=1e-3, lora=lora)


def test_a_lora_plus_run_trains_its_groups_and_resumes_exactly(base, tmp_path):
    straight = train(lora_plus(tmp_path / "a", base, 4))
    state = ckpt_io.load_state(straight / "checkpoints" / "step_0000004")
    groups = {g["name"]: g for g in state["optimizer"]["param_groups"]}
    assert set(groups) == {"lora_A", "lora_B", "full"}
    # the schedule's factor (the tiny recipe's) is the same for every group
    factor = groups["full"]["lr"] / 1e-3
    assert groups["lora_A"]["lr"] == pytest.approx(2e-3 * factor)
    assert groups["lora_B"]["lr"] == pytest.approx(16e-3 * factor)
    train(lora_plus(tmp_path / "b", base, 2))
    other = lora_plus(tmp_path / "b", base, 4)
    other.train.lora.lr, other.train.lora.lr_ratio = None, 1.0  # one group now
    with pytest.raises(RecipeChangedError, match=r"train\.lora\.lr_ratio: 8\.0 -> 1\.0"):  # the recipe check says so
        train(other, resume="last")
    with pytest.raises(ValueError, match=r"parameter groups \['lora_A', 'lora_B', 'full'\].*\['all'\]"):
        train(other, resume="last", allow_changes=True)  # and, forced, the optimiser's groups: no torch error
    resumed = train(lora_plus(tmp_path / "b", base, 4), resume="last")
    a = ckpt_io.load_weights(straight / "checkpoints" / "step_0000004", "model")
    b = ckpt_io.load_weights(resumed / "checkpoints" / "step_0000004", "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)

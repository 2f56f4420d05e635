"""RoPE scalings as registered components: the paper's frequency- and time-aware forms by hand, a user's
own kind through the registry, the model and recipe validation."""

from __future__ import annotations

import math

import pytest
import torch
from fixtures.toy_plugin import seq_task

from lumina_core.config.validate import validate_recipe
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model.rope import FrequencyInputs, NDRope, RopeScaling, RopeScalingRule
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import ROPE_SCALINGS
from lumina_core.tokens import TokenBatch

THETA = 10000.0
D = 16  # head dim, 2 axes interleaved: 4 pairs per axis, d_a = 8, w_k = theta^(-k / 4)
S = 2.0


def frequencies(scaling, t_values, extent=(4.0, 4.0)):
    """(B, 4) frequencies of the h axis, read off the rotation angle at h = 1."""
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=extent)
    pos = torch.tensor([[[1.0, 0.0]]]).expand(len(t_values), 1, 2)
    cos, sin, _ = rope(pos, torch.ones(len(t_values), 1, dtype=torch.bool), torch.tensor(t_values), scaling)
    return torch.atan2(sin, cos)[:, 0, 0::2].double()


def base(k):
    return THETA ** (-k / 4)


def test_builtin_kinds_are_registered():
    names = set(ROPE_SCALINGS.names())
    expected = {"none", "pi", "ntk", "freq_aware", "freq_aware_paper", "time_aware", "time_aware_paper"}
    assert expected | {"time_aware_stepwise"} <= names
    assert all(issubclass(ROPE_SCALINGS.get(n), RopeScalingRule) for n in names)


def test_paper_frequency_aware_form_by_hand():
    # wavelength of pair k = 1 is 2 pi theta^(1/4) = 20 pi: with L = 20 pi it is exactly the training length
    L = 20 * math.pi
    got = frequencies(RopeScaling("freq_aware_paper", scale=S), [0.5], extent=(L, L))
    exponent = math.log(THETA) / math.log(L / (2 * math.pi))  # d_a / d_target = 4
    want = torch.tensor([[(THETA * S**exponent) ** (-k / 4) for k in range(4)]], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)
    # the pair whose wavelength is the training length is interpolated by exactly s (PI there) ...
    assert got[0, 1].item() == pytest.approx(base(1) / S, rel=1e-5)
    # ... higher frequencies less (k = 0 untouched), lower ones more
    assert got[0, 0].item() == pytest.approx(1.0)
    assert got[0, 2].item() < base(2) / S and got[0, 3].item() < base(3) / S


def test_paper_frequency_aware_form_needs_a_training_length_above_two_pi():
    with pytest.raises(ValueError, match="longer than 2 pi"):
        frequencies(RopeScaling("freq_aware_paper", scale=S), [0.5], extent=(6.0, 6.0))


def test_paper_time_aware_form_by_hand():
    got = frequencies(RopeScaling("time_aware_paper", scale=S), [0.0, 0.5, 1.0])
    # t = 0: d_t = 1, theta_t = theta s^16 -> max(w / s, w 2^(-4k)) = w / s except k = 0 (kept)
    t0 = torch.tensor([1.0] + [base(k) / S for k in range(1, 4)], dtype=torch.float64)
    # t = 1: d_t = d, theta_t = theta s: linear NTK exactly, (theta s)^(-k/4) >= w / s for k <= 3
    t1 = torch.tensor([(THETA * S) ** (-k / 4) for k in range(4)], dtype=torch.float64)
    # t = 0.5: d_t = 15 / 2 + 1 = 8.5, theta_t = theta s^(16 / 8.5)
    th = torch.tensor(
        [max(base(k) / S, (THETA * S ** (16 / 8.5)) ** (-k / 4)) for k in range(4)], dtype=torch.float64
    )
    torch.testing.assert_close(got, torch.stack([t0, th, t1]), rtol=1e-5, atol=1e-9)
    released = frequencies(RopeScaling("time_aware", scale=S), [1.0])
    assert (released / t1 - 1).abs().max() > 1e-3  # the released variant stops short of NTK at t = 1


def test_time_aware_forms_need_the_time():
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=(4.0, 4.0))
    pos = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="needs the flow time"):
        rope(pos, torch.ones(1, 1, dtype=torch.bool), None, RopeScaling("time_aware_paper", scale=S))


class HalfPI(RopeScalingRule):
    """A user's kind: ``w' = w / s^alpha``."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def frequencies(self, f: FrequencyInputs) -> torch.Tensor:
        return f.base() / f.scale**self.alpha


def test_a_user_kind_registers_and_reaches_the_model_and_the_validator():
    ROPE_SCALINGS.register("half_pi")(HalfPI)
    try:
        scaling = RopeScaling.build({"name": "half_pi", "params": {"alpha": 0.25, "scale": 16.0}})
        assert dict(scaling.params) == {"alpha": 0.25} and scaling.rule.alpha == 0.25
        got = frequencies(scaling, [0.5])
        torch.testing.assert_close(
            got, torch.tensor([[base(k) / 2.0 for k in range(4)]], dtype=torch.float64)
        )

        spec = AdapterSpec(in_dim=4, out_dim=4, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
        model = LuminaModel(NextDiTConfig(dim=32, n_layers=1, n_heads=2), {"x": spec}).eval()
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.2)
        pos = torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij"), -1).reshape(
            1, 64, 2
        )
        batch = TokenBatch(torch.randn(1, 64, 4), pos, torch.ones(1, 64, dtype=torch.bool), [(8, 8)])
        with torch.no_grad():
            plain = model(batch, 0.5)
            mine = model(batch, 0.5, rope_scaling={"name": "half_pi", "params": {"alpha": 1.0}})
            pi = model(batch, 0.5, rope_scaling="pi")
        torch.testing.assert_close(mine, pi)  # alpha = 1 is PI (scale derived from the extent: 8 / 4)
        assert (plain - pi).abs().max() > 1e-4

        task = seq_task()
        task["sampling"]["rope_scaling"] = {"name": "half_pi", "params": {"alpah": 1.0, "scale": 2.0}}
        problems = validate_recipe({"tasks": [task]})
        assert problems == [
            "tasks.0.sampling.rope_scaling.params.alpah: RoPE scaling 'half_pi' does not take a parameter 'alpah'; "
            "did you mean 'alpha'? (it takes: alpha, scale, proportional_attention, scale_mode, train_tokens, shrink)"
        ]
    finally:
        ROPE_SCALINGS.unregister("half_pi")
    assert "half_pi" not in ROPE_SCALINGS.names()


def test_unknown_kind_and_bad_params_are_clear_errors():
    with pytest.raises(ValueError, match="kind must be one of .*freq_aware_paper"):
        RopeScaling("freq_awre")
    with pytest.raises(ValueError, match="ntk_mode"):
        RopeScaling("ntk", params={"ntk_mode": "square"})
    with pytest.raises(ValueError, match="'pi' does not take 'alpha' \\(it takes: scale, "):
        RopeScaling.build({"name": "pi", "params": {"alpha": 2.0}})


BUILT_IN = (
    "none", "pi", "ntk", "freq_aware", "freq_aware_paper", "time_aware", "time_aware_paper", "time_aware_stepwise"
)  # fmt: skip


def test_rope_kinds_are_the_registry_s_names_all_eight_and_a_user_s():
    from lumina_core.model import rope

    assert set(BUILT_IN) <= set(rope.ROPE_KINDS) and rope.ROPE_KINDS == tuple(ROPE_SCALINGS.names())
    ROPE_SCALINGS.register("half_pi")(HalfPI)
    try:
        assert "half_pi" in rope.ROPE_KINDS
    finally:
        ROPE_SCALINGS.unregister("half_pi")


def test_a_rule_owns_its_parameters_and_rope_scaling_holds_only_the_shared_settings():
    from dataclasses import fields

    shared = {"kind", "scale", "proportional_attention", "scale_mode", "train_tokens", "shrink"}
    assert {f.name for f in fields(RopeScaling)} == shared | {"params", "rule"}
    stepwise = RopeScaling.build(
        {"name": "time_aware_stepwise", "params": {"threshold": 0.5, "ntk_mode": "dd2"}}
    )
    assert (stepwise.rule.threshold, stepwise.rule.ntk_mode) == (0.5, "dd2")
    assert dict(stepwise.params) == {"ntk_mode": "dd2", "threshold": 0.5}
    by_parts = RopeScaling("freq_aware", params={"freq_low": 0.5, "freq_high": 2.0}).rule
    assert (by_parts.freq_low, by_parts.freq_high) == (0.5, 2.0)
    assert RopeScaling("ntk").rule.ntk_mode == "linear"  # the rule's own default
    # the same kind and params are the same scaling, whichever form they came in
    forms = [
        RopeScaling("ntk", scale=2.0, params={"ntk_mode": "dd2"}),
        RopeScaling.build({"name": "ntk", "params": {"scale": 2.0, "ntk_mode": "dd2"}}),
        RopeScaling.build({"kind": "ntk", "scale": 2.0, "ntk_mode": "dd2"}),
    ]
    assert forms[0] == forms[1] == forms[2] and len({hash(f) for f in forms}) == 1

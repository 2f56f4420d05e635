"""generate(): noise in token space, guided integration, detokenize - on a toy plugin with known answers."""

from __future__ import annotations

import pytest
import torch
from fixtures.toy_plugin import OracleModel, SeqPlugin

from lumina_core.registry import CONDITIONERS
from lumina_core.sampling import cfg_combine, channel_mask, generate, token_noise


def test_oracle_field_maps_noise_to_the_gaussian_exactly():
    plugin, model = SeqPlugin(channels=2, patch=2), OracleModel(mu=0.5, std=0.3)
    shapes = [(2, 16), (2, 8)]
    out, nfe = generate(
        model,
        plugin,
        None,
        "seq",
        None,
        shapes=shapes,
        steps=12,
        solver="rk4",
        grid="uniform",
        seed=3,
        return_nfe=True,
    )
    noise = token_noise(plugin.layout(shapes), 3)
    expected = plugin.detokenize(plugin.layout(shapes).with_tokens(0.5 + 0.3 * noise))
    assert nfe == 48
    for o, e, s in zip(out, expected, shapes, strict=True):
        assert tuple(o.shape) == s
        torch.testing.assert_close(o, e, atol=2e-5, rtol=0)


def test_seed_makes_runs_repeatable():
    plugin, model = SeqPlugin(), OracleModel()
    a = generate(model, plugin, None, "seq", None, shapes=[(2, 16)] * 2, steps=4, seed=1)
    b = generate(model, plugin, None, "seq", None, shapes=[(2, 16)] * 2, steps=4, seed=1)
    c = generate(model, plugin, None, "seq", None, shapes=[(2, 16)] * 2, steps=4, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])


class ContextModel(torch.nn.Module):
    """Velocity = the first context token's first D features, the same for every token (constant in x, t)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def velocity(self, batch, t, cond, task=None, rope_scaling=None, **kw):
        self.calls.append((batch.batch_size, rope_scaling, kw))
        d = batch.dim
        return cond.context[:, :1, :d].expand(-1, batch.length, -1).clone()


@pytest.mark.parametrize("cfg_channels", [None, 1])
def test_cfg_is_one_batched_call_and_guides_the_chosen_channels(cfg_channels):
    torch.manual_seed(0)
    plugin = SeqPlugin(channels=2, patch=2)
    enc = CONDITIONERS.build({"name": "class", "params": {"num_classes": 3, "dim": 4}})
    model = ContextModel()
    w = 3.0
    out, nfe = generate(
        model,
        plugin,
        enc,
        "seq",
        [0, 2],
        steps=3,
        solver="euler",
        grid="uniform",
        cfg_scale=w,
        cfg_channels=cfg_channels,
        seed=0,
        return_nfe=True,
    )
    assert nfe == 3 and [c[0] for c in model.calls] == [4, 4, 4]  # cond + uncond in one call of 2B
    table = enc.table.weight.detach()
    v_c, v_u = table[[0, 2]], table[[3, 3]]
    guided = v_u + w * (v_c - v_u)
    if cfg_channels == 1:  # tokens are (C, p) = 2 x 2: the first channel owns token columns 0, 1
        guided[:, 2:] = v_c[:, 2:]
    layout = plugin.layout([(2, 16)] * 2)
    noise = token_noise(layout, 0)
    expected = plugin.detokenize(layout.with_tokens(noise + guided[:, None, :]))
    for o, e in zip(out, expected, strict=True):
        torch.testing.assert_close(o, e)


def test_no_guidance_means_one_conditional_call():
    plugin = SeqPlugin()
    enc = CONDITIONERS.build({"name": "class", "params": {"num_classes": 3, "dim": 4}})
    model = ContextModel()
    generate(model, plugin, enc, "seq", [0, 1, 2], steps=2, solver="heun", cfg_scale=1.0)
    assert [c[0] for c in model.calls] == [3] * 4


def test_channel_mask_probe_and_checks():
    plugin = SeqPlugin(channels=3, patch=2)
    assert channel_mask(plugin, 2, (3, 8), 6).tolist() == [True] * 4 + [False] * 2
    assert channel_mask(plugin, None, (3, 8), 6) is None
    assert channel_mask(plugin, [1, 0, 0, 0, 0, 1], (3, 8), 6).tolist() == [True] + [False] * 4 + [True]
    with pytest.raises(ValueError, match="between 1 and"):
        channel_mask(plugin, 4, (3, 8), 6)
    with pytest.raises(ValueError, match="one entry per token channel"):
        channel_mask(plugin, [True, False], (3, 8), 6)

    class Rolling(SeqPlugin):  # token l rotates its channels by l: no fixed column holds channel 0
        def tokenize(self, samples):
            b = super().tokenize(samples)
            rolled = torch.stack([b.tokens[:, i].roll(i, dims=-1) for i in range(b.length)], dim=1)
            return b.with_tokens(rolled)

    with pytest.raises(ValueError, match="guidance_mask"):
        channel_mask(Rolling(channels=3, patch=2), 1, (3, 8), 6)


def test_cfg_combine_formula():
    v_c, v_u = torch.full((1, 2, 3), 2.0), torch.full((1, 2, 3), 1.0)
    torch.testing.assert_close(cfg_combine(v_c, v_u, 1.0), v_c)
    torch.testing.assert_close(cfg_combine(v_c, v_u, 0.0), v_u)
    torch.testing.assert_close(cfg_combine(v_c, v_u, 4.0), torch.full((1, 2, 3), 5.0))
    out = cfg_combine(v_c, v_u, 4.0, torch.tensor([True, False, True]))
    assert out[0, 0].tolist() == [5.0, 2.0, 5.0]


def test_hooks_and_rope_scaling_reach_the_model():
    plugin, model = SeqPlugin(), OracleModel()
    generate(
        model,
        plugin,
        None,
        "seq",
        None,
        shapes=[(2, 8)],
        steps=2,
        solver="midpoint",
        grid="uniform",
        rope_scaling={"name": "ntk", "params": {"scale": 2.0}},
        hooks=[lambda step, t: {"rope_scaling": "pi"} if t >= 0.5 else None],
    )
    kinds = [
        kw["rope_scaling"] if isinstance(kw["rope_scaling"], str) else kw["rope_scaling"].kind
        for kw in model.kwargs
    ]
    assert kinds == ["ntk", "ntk", "pi", "pi"]  # t = 0, 0.25, 0.5, 0.75


def test_generate_argument_errors():
    plugin, model = SeqPlugin(), OracleModel()
    with pytest.raises(ValueError, match="conditions, shapes"):
        generate(model, plugin, None, "seq", None)
    with pytest.raises(ValueError, match="2 conditions but 1 shapes"):
        generate(model, plugin, None, "seq", [None, None], shapes=[(2, 8)])


def test_generate_with_the_real_trunk_is_repeatable_and_restores_train_mode():
    from lumina_core.model import LuminaModel, NextDiTConfig

    plugin = SeqPlugin()
    enc = CONDITIONERS.build({"name": "class", "params": {"num_classes": 3, "dim": 16}})
    model = LuminaModel(
        NextDiTConfig(dim=32, n_layers=2, n_heads=2, context_dim=16), {"seq": plugin.adapter_spec()}
    )
    for p in model.parameters():  # zero-init final layers would make every velocity 0
        torch.nn.init.normal_(p, std=0.05)
    model.train()
    kw = dict(steps=3, solver="midpoint", cfg_scale=2.0, seed=5)
    a = generate(model, plugin, enc, "seq", [0, 1], shapes=[(2, 16), (2, 8)], **kw)
    b = generate(model, plugin, enc, "seq", [0, 1], shapes=[(2, 16), (2, 8)], **kw)
    assert model.training
    assert [tuple(x.shape) for x in a] == [(2, 16), (2, 8)]
    assert all(torch.isfinite(x).all() and torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # the model is actually used: a different condition changes the sample
    c = generate(model, plugin, enc, "seq", [2, 1], shapes=[(2, 16), (2, 8)], **kw)
    assert not torch.allclose(a[0], c[0])
    noise = token_noise(plugin.layout([(2, 16), (2, 8)]), 5)
    assert not torch.allclose(plugin.detokenize(plugin.layout([(2, 16), (2, 8)]).with_tokens(noise))[0], a[0])


def test_float64_integration_for_references():
    plugin, model = SeqPlugin(), OracleModel(mu=0.5, std=0.3)
    shapes = [(2, 16)]
    out = generate(model, plugin, None, "seq", None, shapes=shapes, steps=1, grid="uniform",
                   solver={"name": "dopri5", "params": {"rtol": 1e-10, "atol": 1e-10}}, seed=3, dtype=torch.float64)  # fmt: skip
    assert out[0].dtype == torch.float64
    noise = token_noise(plugin.layout(shapes), 3).double()
    expected = plugin.detokenize(plugin.layout(shapes).with_tokens(0.5 + 0.3 * noise))[0]
    torch.testing.assert_close(out[0], expected, atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    "solver,steps,nfe",
    [("ab2", 40, 40), ({"name": "heun", "params": {"final_euler": True}}, 20, 39)],
)
def test_new_solvers_reach_the_oracle_answer_through_generate(solver, steps, nfe):
    plugin, model = SeqPlugin(channels=2, patch=2), OracleModel(mu=0.5, std=0.3)
    shapes = [(2, 16)]
    out, used = generate(model, plugin, None, "seq", None, shapes=shapes, steps=steps, solver=solver,
                         grid={"name": "shift", "params": {"s": 0.5}}, seed=3, return_nfe=True)  # fmt: skip
    noise = token_noise(plugin.layout(shapes), 3)
    expected = plugin.detokenize(plugin.layout(shapes).with_tokens(0.5 + 0.3 * noise))[0]
    assert used == nfe
    torch.testing.assert_close(out[0], expected, atol=2e-3, rtol=0)


def test_generate_accepts_a_fitted_explicit_grid():
    from lumina_core.sampling import explicit_node, fit_time_grid

    plugin, model = SeqPlugin(channels=2, patch=2), OracleModel(mu=0.5, std=0.3)
    layout = plugin.layout([(2, 16)] * 4)
    v = lambda x, t: model.velocity(layout.with_tokens(x), t, None)  # noqa: E731
    x_cal = token_noise(layout, 11).double()
    # the oracle flow's end point is known in closed form: x1 = mu + std x0
    fitted = fit_time_grid(v, x_cal, 3, "midpoint", reference_fn=lambda x0: 0.5 + 0.3 * x0, iters=5)
    out, nfe = generate(model, plugin, None, "seq", None, shapes=[(2, 16)], steps=None, solver="midpoint",
                        grid=explicit_node(fitted), seed=3, return_nfe=True)  # fmt: skip
    assert nfe == 6 and torch.isfinite(out[0]).all()
    with pytest.raises(ValueError, match="3 steps but 4"):
        generate(model, plugin, None, "seq", None, shapes=[(2, 16)], steps=4, grid=explicit_node(fitted))

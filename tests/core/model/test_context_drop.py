"""Time-aware context drop: exactness at factor 1, pooling known answers, padding, no-grid tasks, schedule."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model.context_drop import ContextDrop, DropPlan, LayerDrop, drop_plan, pool_plan
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
NO_GRID = AdapterSpec(in_dim=8, out_dim=8, num_axes=0)


def grid(h: int, w: int) -> torch.Tensor:
    hh, ww = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    return torch.stack([hh, ww], -1).reshape(-1, 2)


def make_model(spec: AdapterSpec = SPEC, n_layers: int = 3) -> LuminaModel:
    torch.manual_seed(0)
    model = LuminaModel(
        NextDiTConfig(dim=32, n_layers=n_layers, n_heads=4, n_kv_heads=2, context_dim=12), {"x": spec}
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random values everywhere: the default init zeroes gates and hides the attention
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def batch_of(sizes, seed=0) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    toks = [torch.randn(h * w, 8, generator=g) for h, w in sizes]
    return TokenBatch.from_sequences(toks, [grid(h, w) for h, w in sizes], list(sizes))


def caption(b: int, seed: int = 1) -> Condition:
    g = torch.Generator().manual_seed(seed)
    return Condition(torch.randn(b, 5, 12, generator=g), torch.ones(b, 5, dtype=torch.bool))


# -- exactness ---------------------------------------------------------------------------------------------
def test_factor_one_equals_the_plain_model_exactly():
    model = make_model()
    batch = batch_of([(6, 6), (6, 6)])
    t = torch.tensor([0.0, 0.3])
    with torch.no_grad():
        plain = model(batch, t, caption(2))
        dropped = model(batch, t, caption(2), context_drop={"factor": 1})
    assert torch.equal(plain, dropped)


def test_dropping_changes_the_output_and_t_one_does_not():
    model = make_model()
    batch = batch_of([(6, 6)])
    with torch.no_grad():
        plain0 = model(batch, 0.0, caption(1))
        drop0 = model(batch, 0.0, caption(1), context_drop={"factor": 2})
        plain1 = model(batch, 1.0, caption(1))
        drop1 = model(batch, 1.0, caption(1), context_drop={"factor": 2})
    assert (plain0 - drop0).abs().max() > 1e-3  # pooling really happened at t = 0
    assert torch.equal(plain1, drop1)  # and nowhere at t = 1


# -- pooling known answers -------------------------------------------------------------------------------
def test_pooling_matches_average_pooling_on_a_regular_grid():
    pos = grid(8, 6)[None]
    x = torch.randn(1, 48, 5)
    plan = pool_plan(pos, torch.ones(1, 48, dtype=torch.bool), (2, 3))
    img = x[0].T.reshape(1, 5, 8, 6)
    ref = F.avg_pool2d(img, (2, 3)).reshape(5, -1).T  # (4 * 2, 5) in row-major cell order
    torch.testing.assert_close(plan.pool(x)[0], ref)
    centres = F.avg_pool2d(pos[0].T.reshape(1, 2, 8, 6), (2, 3)).reshape(2, -1).T
    torch.testing.assert_close(plan.positions[0], centres)


def test_pooled_keys_of_a_constant_field_equal_the_unpooled_and_a_linear_field_is_exact():
    pos = grid(5, 7)[None]  # odd sides: border cells hold fewer tokens
    mask = torch.ones(1, 35, dtype=torch.bool)
    plan = pool_plan(pos, mask, (2, 2))
    const = torch.full((1, 35, 3), 0.7)
    torch.testing.assert_close(plan.pool(const), torch.full((1, plan.slots, 3), 0.7))
    a, b = torch.tensor([0.5, -2.0]), 0.25
    linear = (pos @ a + b)[..., None]  # (1, 35, 1): a field linear in the position
    torch.testing.assert_close(plan.pool(linear), (plan.positions @ a + b)[..., None])


def test_attention_over_a_constant_field_is_unchanged_by_pooling():
    # identical keys and values everywhere (no rotation): attention returns v whatever the keys are pooled to
    b, n, h, hd = 2, 36, 4, 8
    q = torch.randn(b, h, n, hd)
    k = torch.randn(1, 1, 2, hd).expand(b, n, 2, hd).contiguous()
    v = torch.randn(1, 1, 2, hd).expand(b, n, 2, hd).contiguous()
    pos = grid(6, 6)[None].expand(b, -1, -1)
    pool = pool_plan(pos, torch.ones(b, n, dtype=torch.bool), (2, 2))
    layer = LayerDrop(DropPlan(pool, None, None, None, ["all"]), "all")
    got = layer.attend(q, k, v, None, None, None, gqa=True)
    ref = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), enable_gqa=True)
    torch.testing.assert_close(got, ref)


# -- padding and batch composition -----------------------------------------------------------------------
def test_padding_never_leaks_into_pooled_keys():
    model = make_model()
    sizes = [(5, 7), (4, 4), (6, 3)]
    batch = batch_of(sizes)
    batch.tokens[~batch.mask] = 1e3  # garbage under the padding
    batch.positions[~batch.mask] = 50.0  # and far-away positions
    t = torch.tensor([0.0, 0.2, 0.1])
    drop = {"factor": 2}
    with torch.no_grad():
        out = model(batch, t, caption(3), context_drop=drop)
        for i, (h, w) in enumerate(sizes):
            alone = model(batch.select([i]), t[i : i + 1], caption(3).select([i]), context_drop=drop)
            torch.testing.assert_close(out[i, : h * w], alone[0, : h * w], atol=1e-5, rtol=1e-5)


def test_samples_at_different_times_match_their_own_schedule():
    model = make_model(n_layers=4)
    batch = batch_of([(6, 6)] * 3, seed=3)
    t = torch.tensor([0.05, 0.6, 1.0])  # all layers, some layers, no layer drop
    drop = ContextDrop(factor=2)
    with torch.no_grad():
        out = model(batch, t, caption(3), context_drop=drop)
        for i in range(3):
            alone = model(batch.select([i]), t[i : i + 1], caption(3).select([i]), context_drop=drop)
            torch.testing.assert_close(out[i], alone[0], atol=1e-5, rtol=1e-5)


def test_a_task_without_grid_positions_is_untouched():
    model = make_model(NO_GRID)
    toks = torch.randn(2, 10, 8)
    batch = TokenBatch(toks, torch.zeros(2, 10, 0), torch.ones(2, 10, dtype=torch.bool), [(10,), (10,)])
    with torch.no_grad():
        assert torch.equal(
            model(batch, 0.0, caption(2)), model(batch, 0.0, caption(2), context_drop={"factor": 4})
        )


def test_gradients_flow_through_pooled_keys():
    model = make_model().train()
    batch = batch_of([(4, 4), (3, 5)])
    out = model(batch, torch.tensor([0.0, 0.5]), caption(2), context_drop={"factor": 2})
    out.square().mean().backward()
    grads = [p.grad for p in model.trunk.layers[0].attention.wqkv.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


# -- the time schedule -----------------------------------------------------------------------------------
def test_layer_schedule_drops_everywhere_at_noise_and_nowhere_at_data():
    drop = ContextDrop(factor=2)
    assert drop.dropping_layers(4, 0.0) == [0, 1, 2, 3]
    assert drop.dropping_layers(4, 0.3) == [0, 1, 2]  # layer j drops while t < (4 - j) / 4
    assert drop.dropping_layers(4, 0.6) == [0, 1]
    assert drop.dropping_layers(4, 0.8) == [0]
    assert drop.dropping_layers(4, 1.0) == []
    half = ContextDrop(factor=2, until=0.5, schedule="all", layers=(1, -1))
    assert half.dropping_layers(4, 0.49) == [1, 3]
    assert half.dropping_layers(4, 0.5) == []


def test_plan_rows_follow_each_samples_time():
    pos = grid(4, 4)[None].expand(3, -1, -1)
    mask = torch.ones(3, 16, dtype=torch.bool)
    plan = drop_plan(ContextDrop(), pos, mask, torch.tensor([0.0, 0.6, 1.0]), 2, lambda p: (None, None))
    assert plan.rows[0].tolist() == [0, 1]  # layer 0: t < 1 for samples 0 and 1
    assert plan.rows[1].tolist() == [0]  # layer 1: t < 0.5 only for sample 0
    assert plan.pool.slots == 4
    assert drop_plan(ContextDrop(), pos, mask, torch.ones(3), 2, lambda p: (None, None)) is None


@pytest.mark.parametrize(
    "value, message",
    [
        ({"factor": 0}, "factor"),
        ({"until": 1.5}, "until"),
        ({"schedule": "ramp"}, "schedule"),
        ("x", "mapping"),
    ],
)
def test_bad_settings_are_clear_errors(value, message):
    with pytest.raises(ValueError, match=message):
        ContextDrop.build(value)


def test_factor_per_axis_must_match_the_axes():
    model = make_model()
    with pytest.raises(ValueError, match="one factor per position axis"):
        model(batch_of([(4, 4)]), 0.0, caption(1), context_drop={"factor": [2, 2, 2]})


# -- from a recipe to generation ---------------------------------------------------------------------------
def test_recipe_context_drop_reaches_generation(tmp_path, monkeypatch):
    from fixtures.toy_plugin import seq_task, tiny_recipe

    from lumina_core.sampling import generate
    from lumina_core.training.build import build_run

    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    task = seq_task()
    task["sampling"] = {
        "steps": 3,
        "solver": {"name": "euler"},
        "context_drop": {"factor": 2, "schedule": "all"},
    }
    cfg = tiny_recipe(tmp_path, [task])
    parts = build_run(cfg)
    model = parts.model.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    settings = parts.task("seq").sampling_settings()
    assert settings.context_drop == ContextDrop(factor=2, schedule="all")
    plugin, enc = parts.task("seq").plugin, parts.task("seq").conditioner
    off = replace(settings, context_drop=None)
    dropped = generate(model, plugin, enc, "seq", [0, 1], [(2, 16)] * 2, settings)
    plain = generate(model, plugin, enc, "seq", [0, 1], [(2, 16)] * 2, off)
    one = generate(model, plugin, enc, "seq", [0, 1], [(2, 16)] * 2, off, context_drop={"factor": 1})
    assert all(torch.equal(a, b) for a, b in zip(plain, one, strict=True))
    assert max(float((a - b).abs().max()) for a, b in zip(plain, dropped, strict=True)) > 1e-4

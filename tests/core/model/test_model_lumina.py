"""LuminaModel: padding invariance, tasks, conditioning branches, bad input, presets, checkpointing, bf16."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import PRESETS, LuminaModel, NextDiTConfig, count_parameters, preset_parameter_counts
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

SPEC = AdapterSpec(in_dim=8, out_dim=16, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))


def grid(h: int, w: int) -> torch.Tensor:
    hh, ww = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([hh, ww], -1).reshape(-1, 2)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random values everywhere (the default init zeroes gates and would hide most of the network)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def make_model(context_dim: int | None = 12, spec: AdapterSpec = SPEC, **kw) -> LuminaModel:
    torch.manual_seed(0)
    cfg = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=context_dim, **kw)
    model = LuminaModel(cfg, {"img": spec})
    randomize(model)
    return model.eval()


def batch_of(sizes, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    toks = [torch.randn(h * w, width, generator=g) for h, w in sizes]
    return TokenBatch.from_sequences(toks, [grid(h, w) for h, w in sizes], list(sizes))


@pytest.mark.parametrize("context_dim", [12, None])
def test_sample_alone_equals_sample_in_padded_batch(context_dim):
    model = make_model(context_dim)
    batch = batch_of([(3, 4), (2, 3), (4, 2)])
    # pad tokens with garbage: the adapter must replace them by its pad token
    batch.tokens[~batch.mask] = 1e3
    t = torch.tensor([0.1, 0.5, 0.9])
    g = torch.Generator().manual_seed(1)
    cond = None
    if context_dim:
        ctx = torch.randn(3, 5, context_dim, generator=g)
        cmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
        cond = Condition(ctx, cmask)
    with torch.no_grad():
        out = model(batch, t, cond, task="img")
        assert out.shape == (3, 12, 16)
        for i in range(3):
            n = int(batch.mask[i].sum())
            alone = batch.select([i])
            c_i = None
            if cond is not None:
                lc = int(cond.mask[i].sum())
                c_i = Condition(cond.context[i : i + 1, :lc], cond.mask[i : i + 1, :lc])
            ref = model(alone, t[i : i + 1], c_i, task="img")
            torch.testing.assert_close(out[i, :n], ref[0, :n], atol=1e-5, rtol=0)


def test_caption_changes_output_and_none_context_is_unconditional():
    model = make_model(12)
    batch = batch_of([(3, 3)])
    ctx = torch.randn(1, 4, 12)
    with torch.no_grad():
        a = model(batch, 0.5, Condition(ctx))
        b = model(batch, 0.5, Condition(torch.randn(1, 4, 12)))  # (a scaled ctx would not do: both norms undo scale)
        c = model(batch, 0.5, None)
        d = model(batch, 0.5, Condition())
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(c, d)
    assert (a - c).abs().max() > 1e-3


def test_velocity_is_first_in_dim_channels_and_time_matters():
    model = make_model()
    batch = batch_of([(2, 2)])
    with torch.no_grad():
        out = model(batch, torch.tensor([0.2]))
        v = model.velocity(batch, torch.tensor([0.2]))
        v2 = model.velocity(batch, torch.tensor([0.8]))
    torch.testing.assert_close(v, out[..., :8])
    assert (v - v2).abs().max() > 1e-4


def test_default_init_is_identity_blocks_and_zero_output():
    cfg = NextDiTConfig.from_preset("tiny", context_dim=12)
    model = LuminaModel(cfg, {"img": SPEC})
    out = model(batch_of([(2, 3)]), 0.3, Condition(torch.randn(1, 3, 12)))
    assert torch.count_nonzero(out) == 0


def test_tasks_share_trunk_and_have_own_adapters():
    model = make_model()
    spec_b = AdapterSpec(in_dim=5, out_dim=5, num_axes=3, axis_split=(2, 1, 1), rope_layout="blocked")
    model.add_task("vid", spec_b)
    assert set(model.adapters) == {"img", "vid"}
    with pytest.raises(ValueError, match="already exists"):
        model.add_task("vid", spec_b)
    pos = torch.stack(torch.meshgrid(*(torch.arange(2.0),) * 3, indexing="ij"), -1).reshape(1, -1, 3)
    b = TokenBatch(torch.randn(1, 8, 5), pos, torch.ones(1, 8, dtype=torch.bool), [(2, 2, 2)])
    assert model(b, 0.5, task="vid").shape == (1, 8, 5)
    with pytest.raises(ValueError, match="task must be named"):
        model(b, 0.5)
    with pytest.raises(ValueError, match="unknown task"):
        model(b, 0.5, task="nope")


def test_no_rope_task_is_permutation_equivariant():
    spec = AdapterSpec(in_dim=8, out_dim=8, num_axes=0)
    model = make_model(None, spec)
    x = torch.randn(1, 6, 8)
    b = TokenBatch(x, torch.zeros(1, 6, 0), torch.ones(1, 6, dtype=torch.bool), [(6,)])
    perm = torch.randperm(6)
    bp = TokenBatch(x[:, perm], torch.zeros(1, 6, 0), torch.ones(1, 6, dtype=torch.bool), [(6,)])
    with torch.no_grad():
        torch.testing.assert_close(model(b, 0.4)[:, perm], model(bp, 0.4), atol=1e-5, rtol=0)


def test_bad_inputs_name_expected_and_got():
    model = make_model()
    with pytest.raises(ValueError, match="in_dim=8.*got 7"):
        model(TokenBatch(torch.randn(1, 4, 7), grid(2, 2)[None], torch.ones(1, 4, dtype=torch.bool), [(2, 2)]), 0.5)
    with pytest.raises(ValueError, match="2 axes.*got 3"):
        model(TokenBatch(torch.randn(1, 4, 8), torch.zeros(1, 4, 3), torch.ones(1, 4, dtype=torch.bool), [(2, 2)]), 0.5)
    with pytest.raises(ValueError, match="context_dim=12; got 5"):
        model(batch_of([(2, 2)]), 0.5, Condition(torch.randn(1, 3, 5)))
    with pytest.raises(ValueError, match="t must be"):
        model(batch_of([(2, 2)]), torch.zeros(3))
    with pytest.raises(ValueError, match="head dim 8.*\\(1, 2\\)"):
        LuminaModel(NextDiTConfig(dim=32, n_heads=4), {"x": AdapterSpec(8, 8, 2, (1, 2))})
    with pytest.raises(ValueError, match="n_kv_heads"):
        NextDiTConfig(dim=32, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="unknown NextDiT preset"):
        NextDiTConfig.from_preset("huge")


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = make_model()
    batch = batch_of([(3, 3), (2, 2)])
    cond = Condition(torch.randn(2, 3, 12))
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(ckpt)
        model(batch, torch.tensor([0.3, 0.6]), cond).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_runs_and_is_close():
    model = make_model()
    batch = batch_of([(3, 3)])
    with torch.no_grad():
        ref = model(batch, 0.5, Condition(torch.randn(1, 3, 12).fill_(0.1)))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch, 0.5, Condition(torch.randn(1, 3, 12).fill_(0.1)))
    assert torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.1


def test_model_cast_to_bf16_runs():
    model = make_model().to(torch.bfloat16)
    with torch.no_grad():
        out = model(batch_of([(3, 2)]), 0.5, Condition(torch.randn(1, 3, 12)))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_preset_parameter_counts():
    from lumina_modalities.image import RELEASED_IMAGE_ADAPTER

    counts = preset_parameter_counts({"image": RELEASED_IMAGE_ADAPTER})
    assert set(counts) == set(PRESETS)
    assert 1.6e9 <= counts["2B"] <= 2.0e9
    assert list(counts.values()) == sorted(counts.values())
    trunk = preset_parameter_counts()
    assert all(trunk[name] < counts[name] for name in PRESETS)  # the adapter's weights are counted on top
    # the tiny count equals a real instantiation's
    cfg = NextDiTConfig.from_preset("tiny")
    real = LuminaModel(cfg, {"image": AdapterSpec(16, 32, 2, (1, 1))})
    assert count_parameters(cfg, {"image": AdapterSpec(16, 32, 2, (1, 1))}) == sum(
        p.numel() for p in real.parameters()
    )


def test_released_ffn_width():
    assert NextDiTConfig.from_preset("2B").ffn_hidden == 6144
    assert NextDiTConfig.from_preset("2B").head_dim == 72


def test_scaled_rope_is_per_sample_so_padding_invariance_holds():
    """Derived scales, time-aware frequencies and proportional attention depend on each sample alone."""
    from lumina_core.model import RopeScaling

    model = make_model()
    batch = batch_of([(8, 4), (3, 3)])  # the first sample is beyond the 4 x 4 training extent
    t = torch.tensor([0.2, 0.9])
    cond = Condition(torch.randn(2, 3, 12))
    scaling = RopeScaling("time_aware", proportional_attention=True)
    with torch.no_grad():
        out = model(batch, t, cond, rope_scaling=scaling)
        plain = model(batch, t, cond)
        for i in range(2):
            n = int(batch.mask[i].sum())
            ref = model(batch.select([i]), t[i : i + 1], cond.select([i]), rope_scaling=scaling)
            torch.testing.assert_close(out[i, :n], ref[0, :n], atol=1e-5, rtol=0)
    assert (out[0] - plain[0]).abs().max() > 1e-4  # scaled: extent 8 > 4
    n1 = int(batch.mask[1].sum())  # 3 x 3 is inside the training extent: scale 1, but proportional attention
    assert (out[1, :n1] - plain[1, :n1]).abs().max() > 1e-4


def test_tokens_wider_than_the_trunk_warn():
    """out_dim > dim: the final layer's output cannot span the token space (noise would stay in samples)."""
    import warnings

    from lumina_core.model.adapter import RankDeficientOutputWarning

    wide = AdapterSpec(in_dim=48, out_dim=48, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
    with pytest.warns(RankDeficientOutputWarning, match="out_dim=48 > dim=32"):
        make_model(spec=wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankDeficientOutputWarning)
        make_model()  # out_dim 16 <= dim 32

"""The ``unified`` trunk family (Unified Next-DiT) as the core sees it: registration, caption handling, RoPE axes,
padding, tasks without captions or without axes, checkpointing, and the released size."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model.unified import UnifiedNextDiT, caption_axis_pairs
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import TRUNK_FAMILIES
from lumina_core.tokens import Condition, TokenBatch

IMAGE = AdapterSpec(in_dim=12, out_dim=12, num_axes=2, axis_split=(1, 1))
POINTS = AdapterSpec(in_dim=3, out_dim=3, num_axes=0)


def _model(spec=IMAGE, context_dim=24, seed=0, **kw) -> LuminaModel:
    torch.manual_seed(seed)
    cfg = NextDiTConfig.from_preset("tiny", family="unified", context_dim=context_dim, **kw)
    model = LuminaModel(cfg, {"task": spec})
    with torch.no_grad():  # leave the zero initialisation: every block and the final layer do something
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _grid_batch(b: int, h: int = 3, w: int = 4, spec=IMAGE, seed=1) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    pos = torch.stack(torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij"), -1).reshape(-1, 2)
    n = h * w
    return TokenBatch(torch.randn(b, n, spec.in_dim, generator=g), pos[None].expand(b, -1, -1).clone(),
                      torch.ones(b, n, dtype=torch.bool), [(h, w)] * b)


def test_both_families_are_registered_and_an_unknown_one_is_refused():
    assert {"next_dit", "unified"} <= set(TRUNK_FAMILIES.names())
    assert isinstance(_model().trunk, UnifiedNextDiT)
    with pytest.raises(ValueError, match="unknown family 'unifed'.*next_dit, unified"):
        NextDiTConfig(family="unifed")


def test_caption_axis_takes_its_share_and_the_task_axes_the_rest():
    assert caption_axis_pairs(96, 1 / 3, (1, 1)) == (16, 16, 16)  # Lumina-Image 2.0: 32 / 32 / 32 dims
    assert caption_axis_pairs(32, 1 / 3, (1, 1)) == (6, 5, 5)  # remainder to the caption axis
    assert caption_axis_pairs(32, 1 / 3, ()) == (16,)  # a task without axes: all pairs on the caption axis
    with pytest.raises(ValueError, match="every axis needs at least one rotation pair"):
        caption_axis_pairs(4, 1 / 3, (1, 1, 1))


def test_sample_output_is_the_same_alone_and_in_a_batch_padded_in_captions_and_tokens():
    model = _model()
    batch = _grid_batch(3)
    batch.mask[2, 9:] = False  # sample 2 has 9 real tokens, the rest padding
    ctx = torch.randn(3, 6, 24, generator=torch.Generator().manual_seed(3))
    cmask = torch.arange(6)[None] < torch.tensor([6, 2, 4])[:, None]
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        full = model(batch, t, Condition(ctx, cmask))
        for i, n_cap in enumerate((6, 2, 4)):
            n_tok = int(batch.mask[i].sum())
            alone = TokenBatch(batch.tokens[i : i + 1, :n_tok], batch.positions[i : i + 1, :n_tok],
                               torch.ones(1, n_tok, dtype=torch.bool), [batch.shapes[i]])
            out = model(alone, t[i : i + 1], Condition(ctx[i : i + 1, :n_cap], None))
            assert torch.allclose(out, full[i : i + 1, :n_tok], atol=1e-5, rtol=1e-4)


def test_left_padded_caption_equals_right_padded_caption():
    """Padding is removed whichever side it is on: the valid tokens keep their order and positions 0..n-1."""
    model = _model()
    batch = _grid_batch(1)
    ctx = torch.randn(1, 3, 24)
    right = torch.cat([ctx, torch.randn(1, 2, 24)], 1)
    left = torch.cat([torch.randn(1, 2, 24), ctx], 1)
    with torch.no_grad():
        a = model(batch, 0.4, Condition(right, torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)))
        b = model(batch, 0.4, Condition(left, torch.tensor([[0, 0, 1, 1, 1]], dtype=torch.bool)))
        shuffled = model(batch, 0.4, Condition(ctx.flip(1), None))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, shuffled, atol=1e-3)  # caption order matters (its RoPE axis)


def test_the_caption_changes_the_prediction_and_the_position_shift_is_the_caption_length():
    model = _model()
    batch = _grid_batch(1)
    with torch.no_grad():
        a = model(batch, 0.4, Condition(torch.randn(1, 3, 24), None))
        b = model(batch, 0.4, Condition(torch.randn(1, 3, 24), None))
    assert (a - b).abs().max() > 1e-3


def test_unconditional_and_empty_caption_samples_work():
    model = _model(context_dim=None)
    out = model(_grid_batch(2), torch.tensor([0.1, 0.7]), None)
    assert out.shape == (2, 12, 12) and torch.isfinite(out).all()
    captioned = _model()
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, :2] = True  # sample 1 has no caption token at all (e.g. an empty text)
    out = captioned(_grid_batch(2), 0.5, Condition(torch.randn(2, 4, 24), mask))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in captioned.parameters() if p.grad is not None)


def test_a_task_without_rope_axes_gets_the_caption_axis():
    model = _model(POINTS)
    assert model.adapters["task"].rope.pairs == (16,)
    g = torch.Generator().manual_seed(0)
    batch = TokenBatch(torch.randn(2, 10, 3, generator=g), torch.zeros(2, 10, 0), torch.ones(2, 10, dtype=torch.bool),
                       [(10,)] * 2)
    perm = torch.randperm(10, generator=g)
    shuffled = TokenBatch(batch.tokens[:, perm], batch.positions, batch.mask, batch.shapes)
    cond = Condition(torch.randn(2, 3, 24, generator=g), None)
    with torch.no_grad():
        out, out_shuffled = model(batch, 0.3, cond), model(shuffled, 0.3, cond)
    assert torch.allclose(out[:, perm], out_shuffled, atol=1e-5)  # no order among the points


def test_checkpointing_gives_the_same_output_and_gradients():
    model = _model()
    batch, cond = _grid_batch(2), Condition(torch.randn(2, 5, 24), torch.tensor([[1] * 5, [1, 1, 0, 0, 0]]).bool())
    model(batch, 0.3, cond).square().sum().backward()
    plain = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(batch, 0.3, cond).square().sum().backward()
    for k, p in model.named_parameters():
        if k in plain:
            assert torch.allclose(p.grad, plain[k], atol=1e-6, rtol=1e-5), k


def test_context_drop_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="next_dit family"):
        _model()(_grid_batch(1), 0.5, None, context_drop={"factor": 2})


def test_fresh_model_blocks_start_as_identity_and_predict_zero():
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig.from_preset("tiny", family="unified", context_dim=24), {"task": IMAGE})
    for block in [*model.trunk.noise_refiner, *model.trunk.layers]:
        assert not block.adaLN_modulation[1].weight.any()
    assert not model.adapters["task"].final_layer.linear.weight.any()
    assert not model(_grid_batch(1), 0.5, Condition(torch.randn(1, 2, 24), None)).any()


def test_lumina_image_2_size_counted_on_the_meta_device():
    """The released Lumina-Image 2.0 (dim 2304, 26 layers, 24 / 8 heads, 2 + 2 refiners, caption width 2304, a
    16-channel latent in 2 x 2 patches): 2,609,769,152 parameters, plus our adapter's pad token (2304)."""
    cfg = NextDiTConfig.from_preset("lumina2")
    assert cfg.family == "unified"
    spec = {"image": dict(in_dim=64, out_dim=64, num_axes=2, axis_split=(1, 1), rope_layout="blocked")}
    assert LuminaModel.count_parameters(cfg, spec) == 2_609_769_152 + 2304


def test_rope_scaling_scales_the_task_axes_and_never_the_caption_axis():
    """A recipe's ``sampling.rope_scaling`` (derived from the task's training extent) works with the unified
    family: the task's axes are scaled as in next_dit, the caption axis never (it failed before: the caption axis
    had no training extent)."""
    from lumina_core.model.rope import RopeScaling

    spec = AdapterSpec(in_dim=12, out_dim=12, num_axes=2, axis_split=(1, 1), train_extent=(3.0, 4.0))
    model = _model(spec)
    rope = model.adapters["task"].rope
    batch = _grid_batch(1, 6, 8, spec=spec)  # twice the training extent on both axes
    pos = torch.cat([torch.full((1, 48, 1), 5.0), batch.positions], -1)
    for mode in ("axis", "area"):
        scale = rope.axis_scale(pos, batch.mask, RopeScaling(kind="pi", scale_mode=mode))
        assert scale.tolist() == [[1.0, 2.0, 2.0]]
    assert rope.axis_scale(pos, batch.mask, RopeScaling(kind="pi", scale=(3.0, 1.5))).tolist() == [[1.0, 3.0, 1.5]]
    prop = rope.proportional_factor(batch.mask, RopeScaling(proportional_attention=True))
    assert torch.allclose(prop, torch.tensor([(torch.log(torch.tensor(48.0)) / torch.log(torch.tensor(12.0))).sqrt()]))
    cond = Condition(torch.randn(1, 3, 24), None)
    with torch.no_grad():
        plain, scaled = model(batch, 0.5, cond), model(batch, 0.5, cond, rope_scaling="pi")
    assert torch.isfinite(scaled).all() and not torch.allclose(plain, scaled)


def test_z_image_variant_fills_to_32_and_a_sample_is_the_same_alone_and_in_a_batch():
    model = _model(unified_variant="z_image", max_cond_dim=256)
    trunk = model.trunk
    assert trunk.x_pad_token.shape == (1, 128) and trunk.t_scale == 1000.0
    assert isinstance(trunk.layers[0].adaLN_modulation[0], torch.nn.Identity)  # Linear(c), no SiLU
    assert trunk.layers[0].feed_forward.hidden == int(128 / 3 * 8)
    batch = _grid_batch(2)
    batch.mask[1, 7:] = False
    ctx = torch.randn(2, 35, 24, generator=torch.Generator().manual_seed(4))
    cmask = torch.arange(35)[None] < torch.tensor([35, 3])[:, None]  # 35 fills to 64, 3 to 32
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        full = model(batch, t, Condition(ctx, cmask))
        for i, n_cap in enumerate((35, 3)):
            n_tok = int(batch.mask[i].sum())
            alone = TokenBatch(batch.tokens[i : i + 1, :n_tok], batch.positions[i : i + 1, :n_tok],
                               torch.ones(1, n_tok, dtype=torch.bool), [batch.shapes[i]])
            out = model(alone, t[i : i + 1], Condition(ctx[i : i + 1, :n_cap], None))
            assert torch.allclose(out, full[i : i + 1, :n_tok], atol=1e-5, rtol=1e-4)
        # the learned fillers take part in attention: changing one changes the prediction
        trunk.cap_pad_token.add_(1.0)
        assert not torch.allclose(model(batch, t, Condition(ctx, cmask)), full, atol=1e-4)

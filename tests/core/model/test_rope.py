"""N-D RoPE: layouts, splits, the rotation itself, relative-position invariance, scaled variants by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.model.rope import NDRope, RopeScaling, apply_rope, axis_pairs, pair_layout

THETA = 10000.0


def rope_tables(rope: NDRope, positions, t=None, scaling=None):
    mask = torch.ones(positions.shape[:2], dtype=torch.bool)
    return rope(positions, mask, t, scaling)


def test_axis_pairs_and_bad_split():
    assert axis_pairs(72, (1, 1)) == (18, 18)
    assert axis_pairs(64, (2, 3, 3)) == (8, 12, 12)  # d/4 : 3d/8 : 3d/8
    with pytest.raises(ValueError, match=r"head dim 72 .*\(1, 2, 2\)"):
        axis_pairs(72, (1, 2, 2))
    with pytest.raises(ValueError, match="head dim 10"):
        axis_pairs(10, (1, 1))


def test_layouts():
    axis, k = pair_layout((2, 3), "interleaved")
    assert axis == [0, 1, 0, 1, 1] and k == [0, 0, 1, 1, 2]
    axis, k = pair_layout((2, 3), "blocked")
    assert axis == [0, 0, 1, 1, 1] and k == [0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match="layout"):
        pair_layout((2, 2), "spiral")


def test_released_2d_frequencies_alternate_h_and_w():
    """Released 2D: pair 2k rotates with h and pair 2k+1 with w, both at theta^(-4k/d)."""
    d = 16
    rope = NDRope(d, (1, 1), "interleaved", THETA)
    pos = torch.tensor([[[3.0, 5.0]]])
    cos, sin = rope_tables(rope, pos)[:2]
    angle = torch.atan2(sin, cos)[0, 0]
    for k in range(d // 4):
        w = THETA ** (-4 * k / d)
        assert math.isclose(float(angle[2 * k]), math.remainder(3 * w, 2 * math.pi), abs_tol=1e-5)
        assert math.isclose(float(angle[2 * k + 1]), math.remainder(5 * w, 2 * math.pi), abs_tol=1e-5)


def test_released_layout_matches_diffusers_table():
    emb = pytest.importorskip("diffusers.models.embeddings")
    d, h, w = 24, 5, 7
    ref = emb.get_2d_rotary_pos_embed_lumina(d, h, w)  # complex (H, W, d/2)
    rope = NDRope(d, (1, 1), "interleaved", THETA)
    hh, ww = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    cos, sin = rope_tables(rope, torch.stack([hh, ww], -1).reshape(1, -1, 2))[:2]
    torch.testing.assert_close(cos[0], ref.real.reshape(h * w, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(sin[0], ref.imag.reshape(h * w, -1), atol=1e-5, rtol=0)


def test_rotation_equals_complex_multiplication():
    """Pair j = channels (j, j + P) rotates like the complex number x[j] + i x[j + P] times e^(i angle)."""
    x = torch.randn(2, 5, 3, 8)
    angle = torch.randn(2, 5, 4)
    out = apply_rope(x, angle.cos(), angle.sin())
    z = torch.complex(x[..., :4], x[..., 4:]) * torch.polar(torch.ones_like(angle), angle)[:, :, None]
    torch.testing.assert_close(out, torch.cat([z.real, z.imag], -1), atol=1e-6, rtol=0)


SCALINGS = [
    RopeScaling(),
    RopeScaling("pi", scale=2.0),
    RopeScaling("ntk", scale=(2.0, 3.0, 1.5)),
    RopeScaling("ntk", scale=2.0, params={"ntk_mode": "dd2"}),
    RopeScaling("freq_aware", scale=2.0),
    RopeScaling("time_aware", scale=2.0),
    RopeScaling("time_aware_stepwise", scale=2.0),
]


@pytest.mark.parametrize("layout", ["interleaved", "blocked"])
@pytest.mark.parametrize(
    "scaling", SCALINGS, ids=lambda s: f"{s.kind}-{dict(s.params).get('ntk_mode', 'linear')}"
)
def test_relative_position_invariance(layout, scaling):
    """Shifting query and key positions by the same vector leaves every q.k dot product unchanged."""
    torch.manual_seed(0)
    d = 32
    rope = NDRope(d, (2, 1, 1), layout, THETA, train_extent=(4, 8, 8))
    pos = torch.randint(0, 20, (1, 6, 3)).float()
    shifted = pos + torch.tensor([7.0, -3.0, 11.0])
    q, k = torch.randn(1, 6, 2, d, dtype=torch.float64), torch.randn(1, 6, 2, d, dtype=torch.float64)
    t = torch.tensor([0.4])
    dots = []
    for p in (pos, shifted):
        cos, sin, _ = rope_tables(rope, p, t, scaling)
        qr, kr = apply_rope(q, cos.double(), sin.double()), apply_rope(k, cos.double(), sin.double())
        dots.append(torch.einsum("bqhd,bkhd->bhqk", qr, kr))
    torch.testing.assert_close(dots[0], dots[1], atol=1e-4, rtol=1e-5)
    if scaling.kind != "none":  # and the scaling really changes the rotation
        cos0 = rope_tables(rope, pos, t, None)[0]
        assert (cos0 - rope_tables(rope, pos, t, scaling)[0]).abs().max() > 1e-3


# -- scaled variants against hand-computed frequencies ------------------------------------------------------
D = 16  # head dim; 2 axes interleaved: 4 pairs per axis, d_a = 8, base w_k = theta^(-k/4)
S = 2.0


def frequencies(scaling, t_values, extent=(4.0, 4.0)):
    """(B, 4) frequencies of the h axis (pairs 0, 2, 4, 6), read off the rotation angle at h = 1."""
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=extent)
    pos = torch.tensor([[[1.0, 0.0]]]).expand(len(t_values), 1, 2)
    cos, sin, _ = rope_tables(rope, pos, torch.tensor(t_values), scaling)
    return torch.atan2(sin, cos)[:, 0, 0::2].double()


def base(k):
    return THETA ** (-k / 4)


def hand(fn):
    return torch.tensor([[fn(k) for k in range(4)]], dtype=torch.float64)


@pytest.mark.parametrize(
    "scaling, at_t0, at_t1",
    [
        (RopeScaling("pi", scale=S), lambda k: base(k) / S, lambda k: base(k) / S),
        (RopeScaling("ntk", scale=S), lambda k: (S * THETA) ** (-k / 4), lambda k: (S * THETA) ** (-k / 4)),
        (
            RopeScaling("ntk", scale=S, params={"ntk_mode": "dd2"}),
            lambda k: (THETA * S ** (8 / 6)) ** (-k / 4),
            lambda k: (THETA * S ** (8 / 6)) ** (-k / 4),
        ),
        # smooth time-aware: t = 0 -> theta_t = theta s^16, max(w/s, w 2^(-4k)) = w/s except k = 0 (kept);
        # t = 1 -> theta_t = theta s^(16/17), and theta_t^(-k/4) = w 2^(-4k/17) beats w/s for k <= 3
        (
            RopeScaling("time_aware", scale=S),
            lambda k: 1.0 if k == 0 else base(k) / S,
            lambda k: base(k) * S ** (-4 * k / 17),
        ),
        (
            RopeScaling("time_aware_stepwise", scale=S),
            lambda k: base(k) / S,
            lambda k: (S * THETA) ** (-k / 4),
        ),
    ],
    ids=["pi", "ntk", "ntk-dd2", "time_aware", "time_aware_stepwise"],
)
def test_scaled_frequencies_by_hand_at_t0_and_t1(scaling, at_t0, at_t1):
    got = frequencies(scaling, [0.0, 1.0])  # per-sample time in one batch
    torch.testing.assert_close(got[0:1], hand(at_t0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1:2], hand(at_t1), atol=1e-6, rtol=1e-5)


def test_stepwise_switches_at_threshold():
    got = frequencies(RopeScaling("time_aware_stepwise", scale=S, params={"threshold": 0.3}), [0.29, 0.31])
    torch.testing.assert_close(got[0:1], hand(lambda k: base(k) / S), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1:2], hand(lambda k: (S * THETA) ** (-k / 4)), atol=1e-6, rtol=1e-5)


def test_frequency_aware_keeps_high_and_interpolates_low_frequencies():
    L = 4.0

    def expected(k):
        w = base(k)
        r = L * w / (2 * math.pi)  # training length over wavelength
        g = min(max((r - 0.25) / (1.0 - 0.25), 0.0), 1.0)
        return g * w + (1 - g) * w / S

    got = frequencies(RopeScaling("freq_aware", scale=S), [0.5], extent=(L, L))
    torch.testing.assert_close(got, hand(expected), atol=1e-6, rtol=1e-5)
    # with a long training extent every frequency completes a turn: nothing is scaled
    got = frequencies(RopeScaling("freq_aware", scale=S), [0.5], extent=(1e4, 1e4))
    torch.testing.assert_close(got, hand(base), atol=1e-6, rtol=1e-5)


def test_derived_scale_per_axis_and_area():
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=(4, 4))
    hh, ww = torch.meshgrid(torch.arange(8.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(1, -1, 2)
    mask = torch.ones(1, 32, dtype=torch.bool)
    torch.testing.assert_close(rope.axis_scale(pos, mask, RopeScaling("pi")), torch.tensor([[2.0, 1.0]]))
    area = rope.axis_scale(pos, mask, RopeScaling("pi", scale_mode="area"))
    torch.testing.assert_close(area, torch.full((1, 2), math.sqrt(2.0)))
    with pytest.raises(ValueError, match="train_extent"):
        NDRope(D, (1, 1)).axis_scale(pos, mask, RopeScaling("pi"))
    with pytest.raises(ValueError, match="one factor per axis"):
        rope.axis_scale(pos, mask, RopeScaling("pi", scale=(1.0, 2.0, 3.0)))


def test_derived_scale_shrinks_only_when_asked():
    """A smaller input keeps s = 1 (its positions as they are) unless ``shrink`` lets s = extent / train go
    below 1; with PI every input's positions then span the training extent."""
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=(8, 8))
    hh, ww = torch.meshgrid(torch.arange(4.0), torch.arange(16.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(1, -1, 2)
    mask = torch.ones(1, 64, dtype=torch.bool)
    torch.testing.assert_close(rope.axis_scale(pos, mask, RopeScaling("pi")), torch.tensor([[1.0, 2.0]]))
    shrunk = rope.axis_scale(pos, mask, RopeScaling("pi", shrink=True))
    torch.testing.assert_close(shrunk, torch.tensor([[0.5, 2.0]]))
    # PI on the shrunk scale: the 4-row grid is read at rows 0, 2, 4, 6 of the 8-row training grid
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    small = torch.stack([rows, cols], -1).reshape(1, -1, 2)
    cos, sin, _ = rope(small, torch.ones(1, 16, dtype=torch.bool), scaling=RopeScaling("pi", shrink=True))
    ref_cos, ref_sin, _ = rope(small * 2, torch.ones(1, 16, dtype=torch.bool), scaling=RopeScaling("none"))
    torch.testing.assert_close((cos, sin), (ref_cos, ref_sin), atol=1e-5, rtol=1e-5)
    # an explicit scale is used as given either way; `none` ignores shrink
    torch.testing.assert_close(
        rope.axis_scale(pos, mask, RopeScaling("pi", scale=0.75, shrink=True)), torch.full((1, 2), 0.75)
    )
    torch.testing.assert_close(rope.axis_scale(pos, mask, RopeScaling("none", shrink=True)), torch.ones(1, 2))
    # a recipe names it like the other shared settings
    assert RopeScaling.build({"name": "pi", "params": {"shrink": True}}) == RopeScaling("pi", shrink=True)


def test_proportional_attention_factor():
    rope = NDRope(D, (1, 1), "interleaved", THETA, train_extent=(4, 4))
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, :64] = True
    mask[1, :16] = True
    factor = rope.proportional_factor(mask, RopeScaling(proportional_attention=True))
    torch.testing.assert_close(factor, torch.tensor([math.sqrt(math.log(64, 16)), 1.0]))
    assert rope.proportional_factor(mask, RopeScaling()) is None


def test_bad_scaling_config():
    with pytest.raises(ValueError, match="kind must be one of"):
        RopeScaling("yarn")
    with pytest.raises(ValueError, match="positive"):
        RopeScaling("pi", scale=0.0)
    assert RopeScaling.build({"name": "ntk", "params": {"scale": [2, 2]}}) == RopeScaling("ntk", scale=(2, 2))
    rope = NDRope(D, (1, 1))
    with pytest.raises(ValueError, match="2 axes for this task.s RoPE; got 3"):
        rope(torch.zeros(1, 4, 3), torch.ones(1, 4, dtype=torch.bool))

"""Interop: parity with diffusers' LuminaNextDiT2DModel, released-format round trips, conversion, bad input."""

from __future__ import annotations

import pytest
import torch

from lumina_core.interop import convert
from lumina_core.model import NextDiTConfig, RopeScaling
from lumina_modalities.image.interop import (
    diffusers_config,
    from_diffusers,
    from_released,
    load_converted,
    readout_permutation,
    to_diffusers_state_dict,
    to_released_state_dict,
)

diffusers = pytest.importorskip("diffusers")
from diffusers import LuminaNextDiT2DModel  # noqa: E402
from fixtures.diffusers_models import SAMPLE, diffusers_forward, random_diffusers  # noqa: E402


def inputs(h=12, w=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, h, w, generator=g)
    y = torch.randn(2, 5, 24, generator=g)
    ymask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    return x, y, ymask


@pytest.mark.parametrize("t_value", [0.15, 0.7])
def test_parity_with_diffusers_scaled_rope_above_training_size(t_value):
    ref_model = random_diffusers()
    ours = from_diffusers(ref_model)
    x, y, ymask = inputs(12, 8)  # 6 x 4 patches > 4 x 4 training grid, non-square
    t = torch.full((2,), t_value)
    scaling = RopeScaling(
        "time_aware_stepwise", scale_mode="area", proportional_attention=True, params={"threshold": 0.5}
    )
    with torch.no_grad():
        ref = diffusers_forward(ref_model, x, t, y, ymask, t_switch=0.5)
        out = ours(x, t, y, ymask, rope_scaling=scaling)
    assert out.shape == (2, 8, 12, 8)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


def test_parity_with_diffusers_at_training_size_without_scaling():
    ref_model = random_diffusers(seed=3, num_kv_heads=4)  # also plain multi-head attention
    ours = from_diffusers(ref_model)
    x, y, ymask = inputs(8, 8)
    t = torch.tensor([0.4, 0.4])
    with torch.no_grad():
        ref = diffusers_forward(ref_model, x, t, y, ymask, proportional=False)
        out = ours(x, t, y, ymask)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


def test_export_round_trips():
    ref_model = random_diffusers()
    ours = from_diffusers(ref_model)
    exported = to_diffusers_state_dict(ours)
    original = ref_model.state_dict()
    assert set(exported) == set(original)
    for k, v in original.items():
        torch.testing.assert_close(exported[k], v, atol=0, rtol=0)
    back = from_released(to_released_state_dict(ours), sample_size=SAMPLE)
    x, y, ymask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(back(x, 0.3, y, ymask), ours(x, 0.3, y, ymask), atol=0, rtol=0)
    rebuilt = LuminaNextDiT2DModel(**diffusers_config(ours))
    rebuilt.load_state_dict(exported, strict=True)


def test_final_layer_rows_follow_input_token_order():
    """Our output channel j of a token means the same (C, ph, pw) slot as input channel j."""
    perm = readout_permutation(patch_size=2, out_channels=3)
    # ours (c, i, j) reads the released row (i * 2 + j) * 3 + c
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert perm[c * 4 + i * 2 + j] == (i * 2 + j) * 3 + c


def test_convert_released_and_diffusers_files(tmp_path):
    ref_model = random_diffusers()
    ours = from_diffusers(ref_model)
    released = to_released_state_dict(ours)
    torch.save(released, tmp_path / "consolidated.00-of-01.pth")
    ref_model.save_pretrained(tmp_path / "dif")
    x, y, ymask = inputs()
    with torch.no_grad():
        expected = ours(x, 0.6, y, ymask)
        for src, fmt in ((tmp_path, "released"), (tmp_path / "dif", "diffusers")):
            out_dir = convert(str(src), str(tmp_path / f"out_{fmt}"), src_format=fmt)
            assert (out_dir / "model.safetensors").is_file() and (out_dir / "config.json").is_file()
            loaded = load_converted(out_dir)
            torch.testing.assert_close(loaded(x, 0.6, y, ymask), expected, atol=1e-6, rtol=0)


def test_bad_state_dicts_list_keys():
    ours = from_diffusers(random_diffusers())
    released = to_released_state_dict(ours)
    broken = dict(released)
    del broken["layers.1.attention.wq.weight"]
    broken["layers.0.attention.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['layers.1.attention.wq.weight'\].*unexpected keys"):
        from_released(broken, sample_size=SAMPLE)
    untied = to_diffusers_state_dict(ours)
    untied["layers.0.attn2.to_q.weight"] = untied["layers.0.attn2.to_q.weight"] + 1
    with pytest.raises(ValueError, match="same tensor"):
        from_diffusers(untied, separate_cross_query=False)  # untied copies load only with a separate query
    with pytest.raises(ValueError, match="unexpected keys .*cap_embedder"):
        from_released(released, config="tiny", sample_size=SAMPLE)  # tiny has no caption branch
    with pytest.raises(ValueError, match=r"t_embedder.mlp.0.weight: expected \(128, 256\), got \(64, 256\)"):
        from_released(released, config=NextDiTConfig.from_preset("tiny", context_dim=24), sample_size=SAMPLE)
    with pytest.raises(ValueError, match="x must be"):
        ours(torch.randn(1, 3, 8, 8), 0.5)


def test_from_released_safetensors_file_and_folder(tmp_path):
    from safetensors.torch import save_file

    ours = from_diffusers(random_diffusers())
    released = {k: v.contiguous() for k, v in to_released_state_dict(ours).items()}
    save_file(released, str(tmp_path / "consolidated.00-of-01.safetensors"))
    x, y, ymask = inputs()
    with torch.no_grad():
        expected = ours(x, 0.5, y, ymask)
        for src in (tmp_path / "consolidated.00-of-01.safetensors", tmp_path):
            loaded = from_released(src, sample_size=SAMPLE)
            torch.testing.assert_close(loaded(x, 0.5, y, ymask), expected, atol=0, rtol=0)
    torch.save(released, tmp_path / "consolidated.01-of-02.pth")
    with pytest.raises(ValueError, match="exactly one consolidated"):
        from_released(tmp_path)


def test_parity_without_qk_norm():
    ref_model = random_diffusers(seed=5, qk_norm=False)
    ours = from_diffusers(ref_model)
    assert not ours.model.config.qk_norm
    x, y, ymask = inputs(8, 8)  # the training size: the pipeline's RoPE scale is 1
    t = torch.tensor([0.9, 0.9])
    with torch.no_grad():
        torch.testing.assert_close(
            ours(x, t, y, ymask),
            diffusers_forward(ref_model, x, t, y, ymask, proportional=False),
            atol=1e-4,
            rtol=1e-5,
        )
    assert set(to_diffusers_state_dict(ours)) == set(ref_model.state_dict())


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_training_gradients_match_diffusers(backend):
    """The backward pass too (both kernel routes): input gradients of the same loss agree with diffusers'."""
    from lumina_core.model.linear_routes import linear_backend

    ref_model = random_diffusers(seed=5)
    ours = from_diffusers(ref_model)
    x, y, ymask = inputs(8, 8)  # the training size: no RoPE scaling on either side
    t = torch.tensor([0.3, 0.8])
    x_ours = x.clone().requires_grad_(True)
    with linear_backend(backend):
        ours(x_ours, t, y, ymask).square().mean().backward()
    x_ref = x.clone().requires_grad_(True)
    diffusers_forward(ref_model, x_ref, t, y, ymask, proportional=False).square().mean().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    # parameter gradients of the SwiGLU (custom backward on the oneDNN route) and of the output projection
    ours_layer, ref_layer = ours.model.trunk.layers[0], ref_model.layers[0]
    ff = ref_layer.feed_forward
    pairs = [
        (
            ours_layer.feed_forward.w13.weight.grad,
            torch.cat([ff.linear_1.weight.grad, ff.linear_3.weight.grad]),
        ),
        (ours_layer.feed_forward.w2.weight.grad, ff.linear_2.weight.grad),
        (ours_layer.attention.wo.weight.grad, ref_layer.attn2.to_out[0].weight.grad),
    ]
    for got, want in pairs:
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)

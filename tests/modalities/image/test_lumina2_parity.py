"""Lumina-Image 2.0 and Z-Image (the unified trunk family) against diffusers' ``Lumina2Transformer2DModel`` and
``ZImageTransformer2DModel``, in fp32.

Randomly initialised small models (every parameter perturbed, so no zero-initialised part hides a mismatch):
captions of different lengths in one padded batch, non-square and odd grids, several GQA ratios. The output
must agree to 1e-4 of its scale, and so must the gradients of the input and of every parameter (diffusers'
gradients mapped through the same key conversion as the weights: the conversion is a permutation and
concatenation of tensors, which gradients follow exactly).
"""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import Lumina2Transformer2DModel  # noqa: E402

from lumina_modalities.image.interop import (  # noqa: E402
    from_diffusers,
    from_lumina2,
    lumina2_config,
    to_lumina2_diffusers,
    to_lumina2_released,
)
from lumina_modalities.image.interop import unified_keys as ukeys  # noqa: E402

TOL = 1e-4

CONFIGS = {
    # GQA 2, 3 x 5 patch grid, captions 7 / 2 / 5 valid tokens of 7
    "gqa2-odd-grid": dict(
        model=dict(patch_size=2, in_channels=4, hidden_size=64, num_layers=2, num_refiner_layers=1,
                   num_attention_heads=4, num_kv_heads=2, multiple_of=16, axes_dim_rope=(4, 6, 6), cap_feat_dim=24),
        hw=(6, 10), caption_lengths=(7, 2, 5), caption_width=7,
    ),
    # GQA 4, 5 x 3 grid, equal caption lengths (the unmasked path), two refiners, ffn multiplier, 3 channels
    "gqa4-tall": dict(
        model=dict(patch_size=2, in_channels=3, hidden_size=96, num_layers=1, num_refiner_layers=2,
                   num_attention_heads=4, num_kv_heads=1, multiple_of=32, ffn_dim_multiplier=1.5,
                   axes_dim_rope=(8, 8, 8), cap_feat_dim=16),
        hw=(10, 6), caption_lengths=(3, 3), caption_width=5,
    ),
    # no GQA, patch 1, 3 x 7 grid, one caption of a single token
    "mha-patch1": dict(
        model=dict(patch_size=1, in_channels=2, hidden_size=32, num_layers=2, num_refiner_layers=1,
                   num_attention_heads=2, num_kv_heads=2, multiple_of=8, axes_dim_rope=(4, 6, 6), cap_feat_dim=8,
                   norm_eps=1e-6),
        hw=(3, 7), caption_lengths=(1, 4), caption_width=4,
    ),
}


def _reference(model_kwargs: dict, seed: int = 0) -> Lumina2Transformer2DModel:
    torch.manual_seed(seed)
    ref = Lumina2Transformer2DModel(sample_size=16, **model_kwargs)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return ref.eval()


def _inputs(case: dict, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    m = case["model"]
    b = len(case["caption_lengths"])
    x = torch.randn(b, m["in_channels"], *case["hw"], generator=g)
    t = torch.rand(b, generator=g)
    cap = torch.randn(b, case["caption_width"], m["cap_feat_dim"], generator=g)
    mask = torch.arange(case["caption_width"])[None] < torch.tensor(case["caption_lengths"])[:, None]
    return x, t, cap, mask


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_forward_and_gradients_match_diffusers(name):
    case = CONFIGS[name]
    ref = _reference(case["model"])
    ours = from_diffusers(ref)
    assert ours.model.config.family == "unified"
    x, t, cap, mask = _inputs(case)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = ref(x_ref, t, cap, mask).sample
    out = ours(x_ours, t, cap, mask)
    assert out.shape == out_ref.shape
    scale = out_ref.abs().max().item()
    assert (out - out_ref).abs().max().item() <= TOL * scale

    g = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(2))
    (out_ref * g).sum().backward()
    (out * g).sum().backward()
    assert (x_ours.grad - x_ref.grad).abs().max().item() <= TOL * x_ref.grad.abs().max().item()
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    expected = ukeys.released_to_ours(
        ukeys.diffusers_to_released(ref_grads), "image", case["model"]["patch_size"], ours.model.config.head_dim
    )
    for k, p in ours.model.named_parameters():
        if k.endswith("pad_token"):  # not in the released model; no padded image tokens here
            continue
        assert p.grad is not None, k
        assert (p.grad - expected[k]).abs().max().item() <= TOL * expected[k].abs().max().item() + 1e-12, k


def test_sample_alone_equals_sample_in_padded_batch():
    """Caption padding is removed: a sample's output does not depend on the other captions' lengths."""
    case = CONFIGS["gqa2-odd-grid"]
    ours = from_diffusers(_reference(case["model"]))
    x, t, cap, mask = _inputs(case)
    with torch.no_grad():
        batch = ours(x, t, cap, mask)
        for i, n in enumerate(case["caption_lengths"]):
            alone = ours(x[i : i + 1], t[i : i + 1], cap[i : i + 1, :n], None)
            assert (alone - batch[i : i + 1]).abs().max().item() <= 1e-5 * batch.abs().max().item()


def test_released_and_comfyui_layouts_round_trip_bit_for_bit():
    case = CONFIGS["gqa2-odd-grid"]
    ref = _reference(case["model"])
    ours = from_diffusers(ref)
    released = to_lumina2_released(ours)
    assert "noise_refiner.0.attention.qkv.weight" in released and "context_refiner.0.adaLN_modulation.1.weight" not in released
    back = to_lumina2_diffusers(ours)
    ref_state = ref.state_dict()
    assert set(back) == set(ref_state)
    assert all(torch.equal(back[k], ref_state[k]) for k in ref_state)
    comfy = {ukeys.COMFY_PREFIX + k: v for k, v in released.items()}
    comfy["model.diffusion_model.norm_final.weight"] = torch.ones(1)  # carried by some files, read by nothing
    again = from_lumina2(comfy, lumina2_config(ours))
    x, t, cap, mask = _inputs(case)
    with torch.no_grad():
        assert torch.equal(again(x, t, cap, mask), ours(x, t, cap, mask))
    inferred = from_lumina2(released).model.config  # sizes read from the tensor shapes (RoPE axes are not stored)
    for field in ("dim", "n_layers", "n_heads", "n_kv_heads", "context_dim", "n_refiner_layers", "family"):
        assert getattr(inferred, field) == getattr(ours.model.config, field), field


def test_not_a_lumina2_checkpoint_is_refused_with_the_keys_expected():
    with pytest.raises(ValueError, match="not a Lumina-Image 2.0 checkpoint"):
        from_lumina2({"foo.weight": torch.zeros(1)})


# -- Z-Image: the unified family's z_image variant against ZImageTransformer2DModel --------------------------
Z_CONFIGS = {
    # 3 x 5 grid (15 tokens, filled to 32), captions of 40 / 2 / 33 valid tokens (filled to 64 / 32 / 64)
    "z-odd-grid": dict(
        model=dict(in_channels=4, dim=64, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=24,
                   axes_dims=[8, 12, 12], axes_lens=[256, 64, 64]),
        hw=(6, 10), caption_lengths=(40, 2, 33), caption_width=40,
    ),
    # 5 x 3 grid, equal captions, two refiner blocks, 3 heads of 32, 3 channels
    "z-tall": dict(
        model=dict(in_channels=3, dim=96, n_layers=1, n_refiner_layers=2, n_heads=3, n_kv_heads=3, cap_feat_dim=16,
                   axes_dims=[8, 12, 12], axes_lens=[256, 64, 64], norm_eps=1e-6),
        hw=(10, 6), caption_lengths=(5, 5), caption_width=5,
    ),
}


@pytest.mark.parametrize("name", sorted(Z_CONFIGS))
def test_z_image_forward_and_gradients_match_diffusers(name):
    from diffusers import ZImageTransformer2DModel

    from lumina_modalities.image.interop.z_image import z_image_to_ours

    case = Z_CONFIGS[name]
    torch.manual_seed(0)
    ref = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), rope_theta=256.0, **case["model"])
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ours = from_diffusers(ref)
    assert ours.model.config.unified_variant == "z_image"
    x, t, cap, mask = _inputs(case)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    lengths = case["caption_lengths"]
    out_ref = torch.stack(ref([x_ref[i][:, None] for i in range(len(lengths))], t,
                              [cap[i, :n] for i, n in enumerate(lengths)]).sample)[:, :, 0]  # fmt: skip
    out = ours(x_ours, t, cap, mask)
    scale = out_ref.abs().max().item()
    assert (out - out_ref).abs().max().item() <= TOL * scale

    g = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(2))
    (out_ref * g).sum().backward()
    (out * g).sum().backward()
    assert (x_ours.grad - x_ref.grad).abs().max().item() <= TOL * x_ref.grad.abs().max().item()
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    expected = z_image_to_ours(ref_grads, "image", 2, ours.model.config.head_dim)
    for k, p in ours.model.named_parameters():
        if k.endswith("adapters.image.pad_token"):
            continue
        assert p.grad is not None, k
        assert (p.grad - expected[k]).abs().max().item() <= TOL * expected[k].abs().max().item() + 1e-12, k

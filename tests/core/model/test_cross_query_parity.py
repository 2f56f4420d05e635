"""A separate cross-attention query: diffusers models whose attn2.to_q / attn2.norm_q differ from attn1's load
(``separate_cross_query``), compute what diffusers computes (forward and gradients) and export back exactly."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import NextDiTConfig
from lumina_modalities.image.interop import from_diffusers, to_diffusers_state_dict, to_released_state_dict

diffusers = pytest.importorskip("diffusers")
from diffusers import LuminaNextDiT2DModel  # noqa: E402
from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina  # noqa: E402
from fixtures.diffusers_models import random_diffusers  # noqa: E402

SAMPLE = 8


def untied_diffusers(seed: int = 0, **kw) -> LuminaNextDiT2DModel:
    """Random values in every parameter, attn2's query projection and norm left different from attn1's."""
    return random_diffusers(seed, tie_query=False, **kw)


def diffusers_forward(model, x, t, y, ymask):
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    emb = get_2d_rotary_pos_embed_lumina(head_dim, 384, 384)
    return model(x, t, y, ymask, emb, cross_attention_kwargs={}, return_dict=False)[0]


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, SAMPLE, SAMPLE, generator=g)
    y = torch.randn(2, 5, 24, generator=g)
    ymask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    return x, y, ymask


@pytest.mark.parametrize("qk_norm", [True, False])
def test_untied_diffusers_model_loads_with_a_separate_query_and_matches(qk_norm):
    ref = untied_diffusers(qk_norm=qk_norm)
    ours = from_diffusers(ref)
    assert ours.model.config.separate_cross_query
    x, y, ymask = inputs()
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t, y, ymask), diffusers_forward(ref, x, t, y, ymask), atol=1e-4, rtol=1e-5)
    # the query copies matter: tying them back (the shared-query model) gives a different output
    tied = from_diffusers(ref, separate_cross_query=True)
    with torch.no_grad():
        for layer in tied.model.trunk.layers:
            layer.attention.wq_y.weight.copy_(layer.attention.wqkv.weight[: layer.attention.splits[0]])
        assert not torch.allclose(tied(x, t, y, ymask), ours(x, t, y, ymask), atol=1e-3)


def test_separate_query_gradients_match_diffusers():
    ref = untied_diffusers(seed=4)
    ours = from_diffusers(ref)
    x, y, ymask = inputs(2)
    t = torch.tensor([0.2, 0.6])
    x_ours, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours(x_ours, t, y, ymask).square().mean().backward()
    diffusers_forward(ref, x_ref, t, y, ymask).square().mean().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    attn = ours.model.trunk.layers[1].attention
    head_dim = 16
    # our query channels are in RoPE "halves" order: compare the gradient up to that row permutation
    from lumina_modalities.image.interop.keys import rope_permutation

    perm = rope_permutation(64, head_dim)
    torch.testing.assert_close(attn.wq_y.weight.grad, ref.layers[1].attn2.to_q.weight.grad[perm], atol=1e-5, rtol=1e-4)


def test_separate_query_exports_back_exactly_and_refuses_the_released_format():
    ref = untied_diffusers(seed=2)
    ours = from_diffusers(ref)
    exported = to_diffusers_state_dict(ours)
    original = ref.state_dict()
    assert set(exported) == set(original)
    for k, v in original.items():
        torch.testing.assert_close(exported[k], v, atol=0, rtol=0)
    with pytest.raises(ValueError, match="separate cross-attention query"):
        to_released_state_dict(ours)


def test_a_tied_model_keeps_one_query_unless_asked():
    ref = untied_diffusers(seed=3)
    with torch.no_grad():
        for layer in ref.layers:
            layer.attn2.to_q.weight.copy_(layer.attn1.to_q.weight)
            layer.attn2.norm_q.load_state_dict(layer.attn1.norm_q.state_dict())
    assert not from_diffusers(ref).model.config.separate_cross_query
    forced = from_diffusers(ref, separate_cross_query=True)
    assert forced.model.config.separate_cross_query
    x, y, ymask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(forced(x, 0.5, y, ymask), from_diffusers(ref)(x, 0.5, y, ymask), atol=1e-5, rtol=0)


def test_the_option_is_a_config_field_and_changes_the_parameters():
    base = NextDiTConfig(dim=32, n_layers=1, n_heads=4, context_dim=8)
    sep = NextDiTConfig.from_dict({**base.to_dict(), "separate_cross_query": True})
    from lumina_core.model import count_parameters

    assert count_parameters(sep) - count_parameters(base) == 32 * 32 + 2 * 32  # W_qy and its LayerNorm

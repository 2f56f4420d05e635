"""The core's per-token conditioning contract (TokenBatch.token_cond, AdapterSpec.token_cond_dim)."""

import pytest
import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import TokenBatch

CFG = dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, multiple_of=16)


def _batch(cond_width=5):
    toks = [torch.randn(6, 4), torch.randn(3, 4)]
    pos = [torch.arange(6.0)[:, None], torch.arange(3.0)[:, None]]
    conds = [torch.randn(6, cond_width), torch.randn(3, cond_width)]
    return TokenBatch.from_sequences(toks, pos, [(6,), (3,)], token_cond=conds)


def test_token_cond_is_padded_selected_moved_and_kept():
    b = _batch()
    assert b.token_cond.shape == (2, 6, 5) and not b.token_cond[1, 3:].any()
    assert torch.equal(b.with_tokens(torch.zeros_like(b.tokens)).token_cond, b.token_cond)
    assert torch.equal(b.select([1]).token_cond, b.token_cond[1:, :3])
    assert torch.equal(b.to("cpu").token_cond, b.token_cond)
    with pytest.raises(ValueError, match="token_cond must be"):
        TokenBatch(b.tokens, b.positions, b.mask, b.shapes, token_cond=torch.zeros(2, 5, 5))


def test_adapter_adds_the_conditioning_and_starts_switched_off():
    spec = AdapterSpec(
        in_dim=4, out_dim=4, num_axes=1, axis_split=(1,), rope_layout="blocked", token_cond_dim=5
    )
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig(**CFG), {"t": spec})
    b = _batch()
    adapter = model.adapters["t"]
    other = b.token_cond + 1.0
    x0 = adapter.embed(b.tokens, b.mask, b.token_cond)
    assert torch.equal(x0, adapter.embed(b.tokens, b.mask, other))  # zero-initialised last layer
    with torch.no_grad():
        adapter.cond_embedder[2].weight.normal_()
    assert not torch.allclose(
        adapter.embed(b.tokens, b.mask, b.token_cond), adapter.embed(b.tokens, b.mask, other)
    )
    # the conditioning gets a gradient through the last layer (once the zero-initialised final layer moved)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    adapter.cond_embedder[2].weight.data.zero_()
    model.velocity(b, torch.tensor([0.3, 0.6])).sum().backward()
    assert adapter.cond_embedder[2].weight.grad.abs().sum() > 0


def test_a_missing_or_unexpected_token_cond_is_a_clear_error():
    plain = AdapterSpec(in_dim=4, out_dim=4, num_axes=1, axis_split=(1,), rope_layout="blocked")
    wants = AdapterSpec(
        in_dim=4, out_dim=4, num_axes=1, axis_split=(1,), rope_layout="blocked", token_cond_dim=5
    )
    model = LuminaModel(NextDiTConfig(**CFG), {"plain": plain, "wants": wants})
    b = _batch()
    with pytest.raises(ValueError, match="token_cond_dim is 0"):
        model.velocity(b, 0.5, task="plain")
    bare = TokenBatch(b.tokens, b.positions, b.mask, b.shapes)
    with pytest.raises(ValueError, match="carries no token_cond"):
        model.velocity(bare, 0.5, task="wants")
    with pytest.raises(ValueError, match="token_cond_dim must be >= 0"):
        AdapterSpec(in_dim=4, out_dim=4, num_axes=0, token_cond_dim=-1)

"""TokenBatch operations keep every field: ``repeat`` (the guided batch of classifier-free guidance)."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from lumina_core.sampling.generate import guided_velocity
from lumina_core.sampling.settings import SamplingSettings
from lumina_core.tokens import Condition, TokenBatch


def _batch() -> TokenBatch:
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    return TokenBatch(
        tokens=torch.randn(2, 3, 4, generator=g), positions=torch.randn(2, 3, 2, generator=g), mask=mask,
        shapes=[(3,), (2,)], meta={"kind": "toy"}, token_cond=torch.randn(2, 3, 5, generator=g),
        given=torch.tensor([[True, False, False], [False, True, False]]),
    )  # fmt: skip


def test_repeat_keeps_every_field():
    batch = _batch()
    assert all(getattr(batch, f.name) is not None for f in fields(TokenBatch))  # every field is exercised
    two = batch.repeat(2)
    for f in fields(TokenBatch):
        value, doubled = getattr(batch, f.name), getattr(two, f.name)
        if isinstance(value, torch.Tensor):
            assert torch.equal(doubled, torch.cat([value, value])), f.name
        elif isinstance(value, list):
            assert doubled == value * 2, f.name
        else:
            assert doubled == value, f.name
    assert torch.equal(batch.repeat(1).tokens, batch.tokens)
    with pytest.raises(ValueError, match="n >= 1"):
        batch.repeat(0)


class _Recorder(torch.nn.Module):
    """A model whose velocity is zero and which keeps the batches it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[TokenBatch] = []

    def velocity(self, batch, t, cond, task=None, **kw):
        self.seen.append(batch)
        return torch.zeros_like(batch.tokens)


def test_the_guided_batch_keeps_the_given_tokens_and_token_conditions():
    batch, model = _batch(), _Recorder()
    cond = Condition(torch.randn(2, 1, 8), torch.ones(2, 1, dtype=torch.bool))
    uncond = Condition(torch.zeros(2, 1, 8), torch.ones(2, 1, dtype=torch.bool))
    v = guided_velocity(model, "toy", batch, cond, uncond, SamplingSettings.build(cfg_scale=3.0))
    v(batch.tokens, torch.full((2,), 0.5))
    (seen,) = model.seen
    assert torch.equal(seen.given, torch.cat([batch.given, batch.given]))
    assert torch.equal(seen.token_cond, torch.cat([batch.token_cond, batch.token_cond]))

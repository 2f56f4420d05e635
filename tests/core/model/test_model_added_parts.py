"""A part added after the model was cast (a task's adapter, an objective's head) takes the trunk's dtype."""

from __future__ import annotations

import torch
from torch import nn

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import TokenBatch

SPEC = AdapterSpec(in_dim=4, out_dim=4, num_axes=1, axis_split=(1,))


def test_an_adapter_and_a_head_added_after_a_cast_follow_the_trunk():
    model = LuminaModel(NextDiTConfig(dim=32, n_layers=1, n_heads=2), {"a": SPEC}).to(torch.float64)
    adapter = model.add_task("b", SPEC)
    head = model.add_head("b", nn.Linear(32, 3))
    assert {p.dtype for p in adapter.parameters()} == {torch.float64}
    assert {p.dtype for p in head.parameters()} == {torch.float64}
    assert model.adapters["b"] is adapter and model.heads["b"] is head
    pos = torch.arange(5.0)[None, :, None]
    batch = TokenBatch(
        torch.randn(1, 5, 4, dtype=torch.float64), pos, torch.ones(1, 5, dtype=torch.bool), [(5,)]
    )
    h, _ = model.encode(batch, 1.0, task="b")
    assert head(h).dtype == torch.float64 and model(batch, 0.5, task="b").dtype == torch.float64

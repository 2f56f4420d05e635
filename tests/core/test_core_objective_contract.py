"""Objective is an abstract base whose loss returns a small record (LossResult) that still unpacks."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.objective import LossResult, Objective
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import OBJECTIVES
from lumina_core.tokens import Condition, TokenBatch


def test_an_objective_without_a_loss_cannot_be_built():
    class NoLoss(Objective):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoLoss()
    for name in ("flow_matching", "classification"):
        info = OBJECTIVES.describe(name)
        assert info.base is Objective and info.conforms, name


def test_flow_matching_returns_a_loss_record_that_unpacks():
    spec = AdapterSpec(in_dim=4, out_dim=4, num_axes=1, axis_split=(1,))
    model = LuminaModel(NextDiTConfig(dim=32, n_layers=1, n_heads=2), {"t": spec})
    pos = torch.arange(6.0)[None, :, None].expand(2, -1, -1)
    batch = TokenBatch(torch.randn(2, 6, 4), pos, torch.ones(2, 6, dtype=torch.bool), [(6,), (6,)])
    result = OBJECTIVES.build({"name": "flow_matching"}).loss(
        model, "t", batch, Condition(), generator=torch.Generator().manual_seed(0)
    )
    assert isinstance(result, LossResult)
    assert result.loss.dim() == 0 and result.loss.requires_grad
    assert not any(v.requires_grad for v in result.stats.values())
    loss, stats = result
    assert loss is result.loss and stats is result.stats and result[0] is loss
    assert torch.equal(stats["loss"], loss.detach())

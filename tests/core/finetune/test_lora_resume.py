"""A LoRA run resumes exactly from what its checkpoint holds: the adapter file (factors only), the optimiser
state of the adapter parameters and the adapter's EMA; the base weights come from the base checkpoint."""

from __future__ import annotations

import pytest
import torch

from lumina_core.finetune import (
    LoraSettings,
    adapter_parameters,
    adapter_state,
    apply_lora,
    load_adapter,
    save_adapter,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch
from lumina_core.training.ema import EMA

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
SETTINGS = LoraSettings(rank=4, alpha=8, dropout=0.2)


def base() -> LuminaModel:
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12), {"img": SPEC})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def step(model, opt, ema, k: int) -> None:
    g = torch.Generator().manual_seed(100 + k)
    hh, ww = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(-1, 2)
    batch = TokenBatch.from_sequences([torch.randn(12, 8, generator=g) for _ in range(2)], [pos, pos], [(3, 4)] * 2)
    cond = Condition(torch.randn(2, 5, 12, generator=g), torch.ones(2, 5, dtype=torch.bool))
    torch.manual_seed(200 + k)  # dropout masks: the RNG state a resume restores
    loss = (model(batch, torch.rand(2, generator=g), cond) - torch.randn(2, 12, 8, generator=g)).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema.update(adapter_parameters(model), k)


def start(model):
    params = adapter_parameters(model)
    return torch.optim.AdamW(params.values(), lr=1e-2), EMA(params, 0.9)


def test_resume_from_adapter_optimiser_and_ema_equals_an_uninterrupted_run(tmp_path):
    straight = base()
    apply_lora(straight, SETTINGS)
    opt, ema = start(straight)
    straight.train()
    for k in range(6):
        step(straight, opt, ema, k)

    first = base()
    apply_lora(first, SETTINGS)
    opt1, ema1 = start(first)
    first.train()
    for k in range(3):
        step(first, opt1, ema1, k)
    adapter = save_adapter(tmp_path / "adapter.safetensors", first, SETTINGS, {"step": 3})
    torch.save({"optimizer": opt1.state_dict(), "ema": ema1.shadow}, tmp_path / "state.pt")
    assert adapter.stat().st_size < 0.25 * sum(p.numel() * 4 for p in base().parameters())

    resumed = base()
    load_adapter(resumed, adapter)
    opt2, ema2 = start(resumed)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    opt2.load_state_dict(state["optimizer"])
    ema2.shadow = state["ema"]
    resumed.train()
    for k in range(3, 6):
        step(resumed, opt2, ema2, k)

    want, got = adapter_state(straight), adapter_state(resumed)
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=0, rtol=0)
    for key in ema.shadow:
        torch.testing.assert_close(ema2.shadow[key], ema.shadow[key], atol=0, rtol=0)
    assert set(ema.shadow) == set(adapter_parameters(straight))  # the EMA holds the adapter only

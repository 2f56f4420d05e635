"""What a LoRA run trains besides the low-rank factors (``LoraSettings.train_also``): by default every task's
modality adapter (patch embedder, final layer). Frozen, those layers are out of LoRA's reach, and a new domain
needs them: a task adapter fresh from ``add_task`` has a zero final layer (the DiT initialisation), so LoRA on
the blocks alone cannot move the output at all, while full fine-tuning and the default LoRA can."""

from __future__ import annotations

import pytest
import torch

from lumina_core.finetune import (
    DEFAULT_TRAIN_ALSO,
    LoraSettings,
    apply_lora,
    full_parameters,
    load_adapter,
    load_adapters_for_sampling,
    lora_trainable_parameters,
    merge_adapter_into,
    merge_lora,
    read_adapter,
    save_adapter,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
CFG = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12)


def trained_trunk_new_task() -> LuminaModel:
    """A trunk with non-trivial (random) weights and a task adapter as ``add_task`` makes it."""
    torch.manual_seed(0)
    model = LuminaModel(CFG)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.trunk.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    model.add_task("new", SPEC)
    return model


def inputs():
    g = torch.Generator().manual_seed(1)
    hh, ww = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(-1, 2)
    seqs = [torch.randn(12, 8, generator=g) for _ in range(2)]
    batch = TokenBatch.from_sequences(seqs, [pos, pos], [(3, 4), (3, 4)])
    cond = Condition(torch.randn(2, 5, 12, generator=g), torch.ones(2, 5, dtype=torch.bool))
    target = torch.randn(2, 12, 8, generator=g)
    return batch, torch.tensor([0.3, 0.8]), cond, target


def fit(model: LuminaModel, params, steps: int = 30) -> list[float]:
    batch, t, cond, target = inputs()
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(batch, t, cond, task="new") - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_the_default_trains_the_task_adapters_in_full_and_freezes_the_base_blocks():
    model = trained_trunk_new_task()
    apply_lora(model, LoraSettings(rank=2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n, _ in model.named_parameters() if n.startswith("adapters.new.")}
    factors = {n for n in trainable if ".lora_" in n}
    assert LoraSettings().train_also == list(DEFAULT_TRAIN_ALSO) == ["adapters"]
    assert trainable == factors | adapters == set(lora_trainable_parameters(model))
    assert {"adapters.new.x_embedder.weight", "adapters.new.final_layer.linear.weight"} <= adapters
    assert not any(n.startswith("trunk.") and ".lora_" not in n for n in trainable)  # the blocks stay frozen


def test_lora_reaches_a_new_domain_only_with_the_task_adapter_trained():
    """Fails before train_also existed: every non-factor parameter was frozen, so a zero final layer kept the
    output constant and the factors' gradients exactly zero."""
    full = trained_trunk_new_task()
    full_losses = fit(full, list(full.parameters()))
    blocks_only = trained_trunk_new_task()
    apply_lora(blocks_only, LoraSettings(rank=4, train_also=[]))
    frozen_losses = fit(blocks_only, list(lora_trainable_parameters(blocks_only).values()))
    default = trained_trunk_new_task()
    apply_lora(default, LoraSettings(rank=4))
    default_losses = fit(default, list(lora_trainable_parameters(default).values()))
    assert frozen_losses[-1] == pytest.approx(frozen_losses[0], rel=1e-6)  # nothing LoRA can move
    assert full_losses[-1] < 0.8 * full_losses[0]
    assert default_losses[-1] < 0.8 * default_losses[0]


def test_the_adapter_file_carries_the_fully_trained_parameters_as_differences(tmp_path):
    model = trained_trunk_new_task()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    settings = LoraSettings(rank=2, alpha=4)
    apply_lora(model, settings)
    fit(model, list(lora_trainable_parameters(model).values()), steps=5)
    model.eval()
    batch, t, cond, _ = inputs()
    with torch.no_grad():
        want = model(batch, t, cond, task="new")
    path = save_adapter(tmp_path / "a.safetensors", model, settings)
    adapter = read_adapter(path)
    assert set(adapter.diffs) == set(full_parameters(model, settings.train_also))
    assert adapter.settings.train_also == ["adapters"]

    def plain():
        m = trained_trunk_new_task()
        m.load_state_dict(base)
        return m.eval()

    merged = load_adapters_for_sampling(plain(), [(path, 1.0)])  # W += s B A; p += trained - base
    reloaded = load_adapter(plain(), path)
    assert reloaded == adapter.modules
    with torch.no_grad():
        torch.testing.assert_close(merged(batch, t, cond, task="new"), want, atol=1e-5, rtol=0)
    zero = merge_adapter_into(base, adapter, scale=0.0)
    assert all(torch.equal(zero[k], base[k]) for k in base)
    unmerged = merge_lora(model)
    assert not hasattr(unmerged, "_lora_full_base") or "_lora_full_base" not in unmerged.__dict__


def test_train_also_that_matches_nothing_is_named():
    model = trained_trunk_new_task()
    with pytest.raises(ValueError, match="train_also .*'no_such_layer'.* top-level modules are"):
        apply_lora(model, LoraSettings(rank=2, train_also=["no_such_layer"]))
    with pytest.raises(ValueError, match="train_also"):
        LoraSettings(train_also=["("])


def test_an_adapter_file_from_before_train_also_reads_as_factors_only():
    assert LoraSettings.from_dict({"rank": 4, "alpha": 4.0, "dropout": 0.0, "targets": ["attention\\.wo"]}).train_also == []


def test_an_export_format_that_cannot_carry_full_weights_refuses_them(tmp_path):
    from lumina_core.finetune import export_adapter

    model = trained_trunk_new_task()
    settings = LoraSettings(rank=2)
    apply_lora(model, settings)
    fit(model, list(lora_trainable_parameters(model).values()), steps=2)
    path = save_adapter(tmp_path / "a.safetensors", model, settings)
    with pytest.raises(ValueError, match="trained 6 tensors in full .*cannot carry.*lumina lora merge"):
        export_adapter(path, tmp_path / "out", "comfyui")
    assert not (tmp_path / "out").exists()

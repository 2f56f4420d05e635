"""LoRA through peft: defaults, frozen base, adapter-only optimiser state, merge == unmerged, adapter files,
several adapters with scales at sampling, errors for people."""

from __future__ import annotations

import copy

import pytest
import torch

from lumina_core.finetune import (
    LoraSettings,
    adapter_parameters,
    adapter_state,
    apply_lora,
    load_adapter,
    load_adapters_for_sampling,
    lora_trainable_parameters,
    merge_adapter_into,
    merge_lora,
    parse_adapter_arg,
    read_adapter,
    save_adapter,
    target_modules,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))


def tiny(**kw) -> LuminaModel:
    torch.manual_seed(0)
    cfg = NextDiTConfig(**{"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "context_dim": 12, **kw})
    model = LuminaModel(cfg, {"img": SPEC})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    hh, ww = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(-1, 2)
    batch = TokenBatch.from_sequences([torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)], [pos, pos],
                                      [(3, 4), (3, 4)])
    cond = Condition(torch.randn(2, 5, 12, generator=g), torch.ones(2, 5, dtype=torch.bool))
    return batch, torch.tensor([0.3, 0.8]), cond


def randomize_factors(model, seed: int = 2, std: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def out(model):
    with torch.no_grad():
        return model(*inputs())


def test_defaults_target_attention_and_ffn_and_start_as_identity():
    model = tiny()
    base = out(model)
    names = apply_lora(model)
    per_layer = ["attention.wqkv", "attention.wkv_y", "attention.wo", "feed_forward.w13", "feed_forward.w2"]
    assert names == [f"trunk.layers.{i}.{n}" for i in range(2) for n in per_layer]
    assert LoraSettings().rank == 16 and LoraSettings().alpha == 16 and LoraSettings().dropout == 0.0
    torch.testing.assert_close(out(model), base)  # B = 0: a no-op until trained
    assert target_modules(tiny(separate_cross_query=True), LoraSettings().targets).count(
        "trunk.layers.0.attention.wq_y") == 1


def test_training_moves_only_the_adapter_and_the_optimiser_holds_only_adapter_state():
    model = tiny()
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.1, train_also=[]))  # the factors only
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(adapter_parameters(model)) and len(trainable) == 2 * 10
    opt = torch.optim.AdamW(adapter_parameters(model).values(), lr=1e-2)
    batch, t, cond = inputs()
    target = torch.randn(2, 12, 8, generator=torch.Generator().manual_seed(5))
    model.train()
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = (model(batch, t, cond) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert len(opt.state) == len(trainable)
    merged = merge_lora(model)
    # only the adapted weights changed, and nothing else
    for k, v in merged.state_dict().items():
        changed = not torch.equal(v, frozen[k])
        assert changed == any(k == f"{n}.weight" for n in target_modules(tiny(), LoraSettings().targets)), k


def test_merge_equals_unmerged_and_leaves_a_plain_model():
    model = tiny(separate_cross_query=True)
    keys = set(model.state_dict())
    apply_lora(model, LoraSettings(rank=3, alpha=6))
    randomize_factors(model)
    unmerged = out(model)
    merged = merge_lora(model)
    from peft.tuners.lora import LoraLayer

    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert set(merged.state_dict()) == keys
    torch.testing.assert_close(out(merged), unmerged, atol=1e-5, rtol=0)


def test_adapter_file_holds_only_the_adapter_and_loads_back(tmp_path):
    model = tiny()
    apply_lora(model, LoraSettings(rank=2, alpha=4))
    randomize_factors(model)
    want = out(model)
    path = save_adapter(tmp_path / "adapter.safetensors", model, LoraSettings(rank=2, alpha=4), {"step": 7})
    loaded = read_adapter(path)
    assert set(loaded.state) == set(adapter_state(model))
    assert loaded.settings.rank == 2 and loaded.meta == {"step": 7} and loaded.model_config["dim"] == 32
    n_adapter = sum(v.numel() for v in loaded.state.values())
    assert n_adapter < 0.2 * sum(p.numel() for p in tiny().parameters())
    fresh = tiny()
    load_adapter(fresh, path)
    torch.testing.assert_close(out(fresh), want, atol=1e-6, rtol=0)
    assert {n for n, p in fresh.named_parameters() if p.requires_grad} == set(lora_trainable_parameters(fresh))


def test_several_adapters_with_scales_merge_for_sampling(tmp_path):
    files, unmerged = [], []
    for seed in (3, 4):
        model = tiny()
        apply_lora(model, LoraSettings(rank=2, alpha=2, targets=[r"attention\.wqkv", r"feed_forward\.w2"]))
        randomize_factors(model, seed)
        files.append(save_adapter(tmp_path / f"a{seed}.safetensors", model, LoraSettings(rank=2, alpha=2, targets=[
            r"attention\.wqkv", r"feed_forward\.w2"])))
        unmerged.append(out(model))
    base = out(tiny())
    torch.testing.assert_close(out(load_adapters_for_sampling(tiny(), [(files[0], 1.0)])), unmerged[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out(load_adapters_for_sampling(tiny(), [(files[0], 0.0)])), base, atol=1e-6, rtol=0)
    halves = out(load_adapters_for_sampling(tiny(), [(files[0], 0.5), (files[0], 0.5)]))
    torch.testing.assert_close(halves, unmerged[0], atol=1e-5, rtol=0)
    # two different adapters: the weight updates add up
    both = load_adapters_for_sampling(tiny(), [(files[0], 1.0), (files[1], -0.5)])
    weights = merge_adapter_into(dict(tiny().state_dict()), files[0], 1.0)
    weights = merge_adapter_into(weights, files[1], -0.5)
    for k, v in both.state_dict().items():
        torch.testing.assert_close(v, weights[k], atol=1e-6, rtol=0)
    # a training checkpoint's keys carry "model."
    prefixed = merge_adapter_into({"model." + k: v for k, v in tiny().state_dict().items()}, files[0], 1.0, "model.")
    single = load_adapters_for_sampling(tiny(), [(files[0], 1.0)]).state_dict()
    for k, v in single.items():
        torch.testing.assert_close(prefixed["model." + k], v, atol=1e-6, rtol=0)


def test_errors_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match=r"rank must be a positive integer.*alpha must be.*dropout must be"):
        LoraSettings(rank=0, alpha=-1, dropout=1.5)
    with pytest.raises(ValueError, match=r"match no linear layer.*attention.wqkv"):
        apply_lora(tiny(), LoraSettings(targets=["attention\\.nothing"]))
    with pytest.raises(ValueError, match="no wkv_y"):
        apply_lora(tiny(context_dim=None), LoraSettings(targets=["wkv_y", "wo"]))
    model = tiny()
    apply_lora(model, LoraSettings(rank=2))
    with pytest.raises(ValueError, match="already carries LoRA"):
        apply_lora(model)
    path = save_adapter(tmp_path / "a.safetensors", model, LoraSettings(rank=2))
    with pytest.raises(ValueError, match="different trunk: dim: adapter 32, model 64"):
        load_adapters_for_sampling(LuminaModel(NextDiTConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                                             context_dim=12), {"img": SPEC}), [(path, 1.0)])
    with pytest.raises(FileNotFoundError, match="no LoRA adapter file"):
        read_adapter(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a Lumina LoRA adapter"):
        read_adapter(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot be read as safetensors"):
        read_adapter(tmp_path / "junk.safetensors")


def test_parse_adapter_arg():
    assert parse_adapter_arg("runs/x/lora.safetensors") == ("runs/x/lora.safetensors", 1.0)
    assert parse_adapter_arg("runs/x/lora.safetensors:0.6") == ("runs/x/lora.safetensors", 0.6)
    assert parse_adapter_arg("C:/x/lora.safetensors") == ("C:/x/lora.safetensors", 1.0)
    assert copy.copy(LoraSettings(targets="wo")).targets == ["wo"]

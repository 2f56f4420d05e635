"""``lumina lora merge | export | info`` as a user runs them: merged weights, files written, errors exit 2."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lumina_core.cli.main import main
from lumina_core.finetune import (
    LoraSettings,
    adapter_parameters,
    apply_lora,
    merge_adapter_into,
    save_adapter,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.training import checkpoint as ck

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=16, out_dim=16, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
CFG = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12)


def base_model() -> LuminaModel:
    torch.manual_seed(0)
    return LuminaModel(CFG, {"image": SPEC})


def adapter_file(tmp_path, seed: int, name: str):
    model = base_model()
    settings = LoraSettings(rank=2, alpha=4)
    apply_lora(model, settings)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return save_adapter(tmp_path / name, model, settings, {"step": seed})


def training_checkpoint(tmp_path):
    weights = {"model." + k: v for k, v in base_model().state_dict().items()}
    ema = {k: v + 0.01 for k, v in weights.items()}
    return ck.save_checkpoint(tmp_path / "run" / "checkpoints", 12, weights, ema, {"step": 12}, {"note": "base"})


def test_merge_a_training_checkpoint_with_two_scaled_adapters(tmp_path, capsys):
    base = training_checkpoint(tmp_path)
    a, b = adapter_file(tmp_path, 1, "a.safetensors"), adapter_file(tmp_path, 2, "b.safetensors")
    out = tmp_path / "merged"
    assert main(["lora", "merge", str(base), f"{a}:0.5", f"{b}:-1", "--out", str(out)]) == 0
    assert "merged 2 adapter(s)" in capsys.readouterr().out
    merged = ck.resolve_weights(out)
    assert merged.name == base.name and json.loads((merged / "meta.json").read_text())["note"] == "base"
    for which in ("model", "ema"):
        want = merge_adapter_into(merge_adapter_into(ck.load_weights(base, which), a, 0.5, "model."), b, -1.0, "model.")
        got = ck.load_weights(merged, which)
        assert set(got) == set(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=0, rtol=0)
    changed = [k for k in want if not torch.equal(want[k], ck.load_weights(base, "ema")[k])]
    assert changed and all(".layers." in k for k in changed)


def test_merge_a_converted_folder_export_and_info(tmp_path, capsys):
    conv = tmp_path / "conv"
    conv.mkdir()
    from safetensors.torch import save_file

    save_file(base_model().state_dict(), str(conv / "model.safetensors"))
    (conv / "config.json").write_text(json.dumps({"format": "lumina", "model": CFG.to_dict(), "tasks": {}}))
    a = adapter_file(tmp_path, 3, "a.safetensors")
    assert main(["lora", "merge", str(conv), str(a), "--out", str(tmp_path / "m")]) == 0
    got = load_file(str(tmp_path / "m" / "model.safetensors"))
    want = merge_adapter_into(load_file(str(conv / "model.safetensors")), a, 1.0)
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=0, rtol=0)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["lora_merged"][0]["scale"] == 1.0

    assert main(["lora", "export", str(a), "--format", "diffusers", "--out", str(tmp_path / "d")]) == 0
    keys = load_file(str(tmp_path / "d" / "pytorch_lora_weights.safetensors"))
    assert "transformer.layers.0.attn1.to_q.lora_B.weight" in keys
    assert main(["lora", "export", str(a), "--format", "comfyui", "--out", str(tmp_path / "c.safetensors")]) == 0
    assert "diffusion_model.layers.1.feed_forward.w2.alpha" in load_file(str(tmp_path / "c.safetensors"))
    capsys.readouterr()
    assert main(["lora", "info", str(a)]) == 0
    text = capsys.readouterr().out
    assert "rank 2, alpha 4" in text and "10 modules" in text and "step: 3" in text


def test_bad_input_exits_2_with_one_paragraph(tmp_path, capsys):
    base = training_checkpoint(tmp_path)
    a = adapter_file(tmp_path, 1, "a.safetensors")
    assert main(["lora", "merge", str(base), str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "o")]) == 2
    assert "no LoRA adapter file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "taken").mkdir()
    assert main(["lora", "merge", str(base), str(a), "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["lora", "export", str(base / "model.safetensors"), "--format", "comfyui", "--out",
                 str(tmp_path / "x.safetensors")]) == 2
    assert "not a Lumina LoRA adapter" in capsys.readouterr().err
    other = LuminaModel(NextDiTConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12), {"image": SPEC})
    ck.save_checkpoint(tmp_path / "big", 1, {"model." + k: v for k, v in other.state_dict().items()}, None, {})
    assert main(["lora", "merge", str(tmp_path / "big"), str(a), "--out", str(tmp_path / "o2")]) == 2
    assert "adapter's B A is" in capsys.readouterr().err
    assert main(["lora"]) == 0  # the sub-command list

"""LoRA export: the diffusers file loads through diffusers' own ``load_lora_adapter`` into a
``LuminaNextDiT2DModel`` and computes what our adapted model computes; the ComfyUI file's keys are ComfyUI's
generic LoRA keys over the released module names, and ComfyUI's patch rule (``W += alpha / r * up @ down``) on
the released weights gives our adapted model."""

from __future__ import annotations

import pytest
import torch

from lumina_core.finetune import (
    LoraSettings,
    adapter_parameters,
    apply_lora,
    save_adapter,
)
from lumina_modalities.image.interop import (
    export_comfyui,
    export_diffusers,
    from_diffusers,
    from_released,
    to_released_state_dict,
)

pytest.importorskip("peft")
diffusers = pytest.importorskip("diffusers")
from diffusers import LuminaNextDiT2DModel  # noqa: E402
from diffusers.loaders.peft import PeftAdapterMixin  # noqa: E402
from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ARGS = dict(sample_size=8, patch_size=2, in_channels=4, hidden_size=64, num_layers=2, num_attention_heads=4,
            num_kv_heads=2, cross_attention_dim=24)


class LoraLuminaNextDiT(LuminaNextDiT2DModel, PeftAdapterMixin):
    """diffusers' transformer with diffusers' LoRA loading (the mixin its LoRA-capable transformers carry)."""


def random_diffusers(tied: bool, seed: int = 0) -> LoraLuminaNextDiT:
    torch.manual_seed(seed)
    model = LoraLuminaNextDiT(**ARGS).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        if tied:
            for layer in model.layers:
                layer.attn2.to_q.weight.copy_(layer.attn1.to_q.weight)
                layer.attn2.norm_q.load_state_dict(layer.attn1.norm_q.state_dict())
    return model


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=g)
    y = torch.randn(2, 5, 24, generator=g)
    return x, y, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]), torch.tensor([0.3, 0.7])


def diffusers_forward(model):
    x, y, ymask, t = inputs()
    emb = get_2d_rotary_pos_embed_lumina(16, 384, 384)
    with torch.no_grad():
        return model(x, t, y, ymask, emb, cross_attention_kwargs={}, return_dict=False)[0]


def adapted(ref, settings: LoraSettings, seed: int = 2):
    ours = from_diffusers(ref)
    apply_lora(ours.model, settings)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(ours.model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    ours.model.eval()
    return ours


def ours_forward(ours):
    x, y, ymask, t = inputs()
    with torch.no_grad():
        return ours(x, t, y, ymask)


SETTINGS = LoraSettings(rank=3, alpha=6, targets=list(LoraSettings().targets) + [r"layers\.\d+\.adaLN_modulation\.1"])


@pytest.mark.parametrize("tied", [True, False], ids=["shared-query", "separate-query"])
def test_diffusers_export_loads_with_diffusers_lora_loader_and_matches(tmp_path, tied):
    ref = random_diffusers(tied)
    ours = adapted(ref, SETTINGS)
    want = ours_forward(ours)
    path = save_adapter(tmp_path / "adapter.safetensors", ours.model, SETTINGS)
    out = export_diffusers(path, tmp_path / "diffusers")
    assert out.name == "pytorch_lora_weights.safetensors"
    state = load_file(str(out))
    assert all(k.startswith("transformer.layers.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in state)
    assert "transformer.layers.1.attn2.to_q.lora_A.weight" in state  # the cross-attention query is adapted too
    assert "transformer.layers.0.feed_forward.linear_3.lora_B.weight" in state
    assert "transformer.layers.0.norm1.linear.lora_A.weight" in state
    base = diffusers_forward(ref)
    assert not torch.allclose(base, want, atol=1e-3)  # the adapter matters
    ref.load_lora_adapter(state, prefix="transformer", adapter_name="lumina")
    from peft.tuners.lora import LoraLayer

    assert sum(isinstance(m, LoraLayer) for m in ref.modules()) == len({k.rsplit(".", 2)[0] for k in state})
    torch.testing.assert_close(diffusers_forward(ref), want, atol=1e-4, rtol=1e-5)


def test_comfyui_export_keys_and_patch_rule_match(tmp_path):
    ref = random_diffusers(tied=True)
    ours = adapted(ref, SETTINGS)
    want = ours_forward(ours)
    path = save_adapter(tmp_path / "adapter.safetensors", ours.model, SETTINGS)
    out = export_comfyui(path, tmp_path / "comfy.safetensors")
    lora = load_file(str(out))
    released = to_released_state_dict(from_diffusers(ref))
    # ComfyUI's generic key map for a diffusion model: "diffusion_model.<module>" for each "<module>.weight"
    key_map = {f"diffusion_model.{k[: -len('.weight')]}": k for k in released if k.endswith(".weight")}
    prefixes = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in lora}
    assert prefixes <= set(key_map)
    assert "diffusion_model.layers.0.attention.wq" in prefixes and "diffusion_model.layers.1.feed_forward.w3" in prefixes
    patched = dict(released)
    for prefix in prefixes:  # ComfyUI's LoRA patch: W += (alpha / rank) * up @ down
        up, down, alpha = lora[f"{prefix}.lora_up.weight"], lora[f"{prefix}.lora_down.weight"], lora[f"{prefix}.alpha"]
        target = key_map[prefix]
        patched[target] = patched[target] + float(alpha) / down.shape[0] * (up @ down)
    got = ours_forward(from_released(patched, sample_size=8))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_comfyui_export_refuses_a_separate_query(tmp_path):
    ours = adapted(random_diffusers(tied=False), LoraSettings(rank=2))
    path = save_adapter(tmp_path / "a.safetensors", ours.model, LoraSettings(rank=2))
    with pytest.raises(ValueError, match="export it to diffusers instead"):
        export_comfyui(path, tmp_path / "c.safetensors")

"""The LoRA formats of the Lumina-Next image model, registered in ``LORA_FORMATS``:

* ``diffusers`` - peft keys ``transformer.<module>.lora_A.weight`` / ``.lora_B.weight`` of diffusers'
  ``LuminaNextDiT2DModel`` (``alpha / r`` folded into ``B``, so a loader's default ``alpha = r`` is right);
* ``comfyui`` - ComfyUI's generic LoRA keys ``diffusion_model.<module>.lora_down.weight`` (A),
  ``.lora_up.weight`` (B) and ``.alpha`` over the released Lumina-Next module names.

Our factors sit on fused projections (``wqkv``, ``wkv_y``, ``w13``); with ``W' = W + s B A`` and ``W`` the row
stack of its parts, each part's update is ``s B_part A`` with ``B_part`` the part's row block of ``B``: the
parts share ``A`` and the export is exact. Query/key rows are permuted back to the released RoPE channel order
(:func:`lumina_modalities.image.interop.keys.lora_to_released`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lumina_core.finetune.export import LoraExportFormat, export_adapter
from lumina_core.finetune.lora import AdapterFile
from lumina_core.interop.formats import fused_splits
from lumina_core.model.config import NextDiTConfig
from lumina_core.registry import LORA_FORMATS

from . import keys


def released_parts(adapter: AdapterFile) -> tuple[NextDiTConfig, list[tuple[str, Tensor, Tensor]]]:
    """The adapter's trunk config and its factors over released module names: ``[(module, A, B_part)]``."""
    if adapter.model_config is None:
        raise ValueError("the adapter file does not record its trunk config; it cannot be exported")
    cfg = NextDiTConfig.from_dict(adapter.model_config)
    if cfg.family != "next_dit":
        raise ValueError(
            f"this adapter was trained on a {cfg.family!r} trunk; the diffusers and comfyui LoRA exports map onto "
            "Lumina-Next (LuminaNextDiT2DModel) and would name the wrong modules. Exporting LoRAs of the unified "
            "family (Lumina-Image 2.0 / Z-Image) is not implemented yet: sample them here with `lumina sample --lora`"
        )
    splits = fused_splits(cfg)
    parts = []
    for module in adapter.modules:
        a, b = adapter.factors(module)
        parts += keys.lora_to_released(module, a, b, splits, cfg.head_dim)
    return cfg, parts


@LORA_FORMATS.register("diffusers")
class DiffusersLoraFormat(LoraExportFormat):
    """diffusers' LoRA for ``LuminaNextDiT2DModel``; the shared query's factors go to both ``attn1.to_q`` and
    ``attn2.to_q``. Loads with diffusers' ``load_lora_adapter(..., prefix="transformer")``."""

    name = "diffusers"
    description = "diffusers LoRA for LuminaNextDiT2DModel (peft keys under 'transformer.', alpha/r folded into B)"
    default_filename = "pytorch_lora_weights.safetensors"

    def export(self, adapter: AdapterFile, out: str | Path) -> list[Path]:
        cfg, parts = released_parts(adapter)
        s = adapter.settings.scale
        state = {}
        for released, a, b in parts:
            for module in keys.released_module_to_diffusers(released, cfg.separate_cross_query):
                state[f"transformer.{module}.lora_A.weight"] = a.clone()
                state[f"transformer.{module}.lora_B.weight"] = b * s
        return [self.write(state, self.output_file(out))]


@LORA_FORMATS.register("comfyui")
class ComfyUILoraFormat(LoraExportFormat):
    """ComfyUI's generic LoRA keys over the released module names (``layers.N.attention.wq``,
    ``feed_forward.w1``...). A separate cross-attention query has no place there (the released network shares
    its query): ValueError."""

    name = "comfyui"
    description = "ComfyUI generic LoRA keys: diffusion_model.<released module>.lora_up / lora_down / alpha"
    default_filename = "lora_comfyui.safetensors"

    def export(self, adapter: AdapterFile, out: str | Path) -> list[Path]:
        _, parts = released_parts(adapter)
        if any(".attention.wq_y" in released for released, _, _ in parts):
            raise ValueError(
                "the adapter adapts a separate cross-attention query (wq_y), which the released Lumina-Next "
                "network and its ComfyUI key names do not have; export it to diffusers instead"
            )
        alpha = torch.tensor(float(adapter.settings.alpha))
        state = {}
        for released, a, b in parts:
            state[f"diffusion_model.{released}.lora_down.weight"] = a.clone()
            state[f"diffusion_model.{released}.lora_up.weight"] = b
            state[f"diffusion_model.{released}.alpha"] = alpha.clone()
        return [self.write(state, self.output_file(out))]


def export_diffusers(adapter: str | Path | AdapterFile, out: str | Path) -> Path:
    """Write ``adapter`` in the diffusers LoRA format (a ``.safetensors`` path, or a folder that gets
    ``pytorch_lora_weights.safetensors``); returns the file."""
    return export_adapter(adapter, out, "diffusers")[0]


def export_comfyui(adapter: str | Path | AdapterFile, out: str | Path) -> Path:
    """Write ``adapter`` in ComfyUI's generic LoRA key format (a ``.safetensors`` path, or a folder that gets
    ``lora_comfyui.safetensors``); returns the file."""
    return export_adapter(adapter, out, "comfyui")[0]

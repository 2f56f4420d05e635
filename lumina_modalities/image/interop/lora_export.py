"""The LoRA formats of the image model, registered in ``LORA_FORMATS``, for both trunk families:

* ``diffusers`` - peft keys ``transformer.<module>.lora_A.weight`` / ``.lora_B.weight`` of diffusers'
  ``LuminaNextDiT2DModel`` (``next_dit``), ``Lumina2Transformer2DModel`` (``unified``, Lumina-Image 2.0) or
  ``ZImageTransformer2DModel`` (``unified``, Z-Image); ``alpha / r`` folded into ``B``, so a loader's default
  ``alpha = r`` is right;
* ``comfyui`` - ComfyUI's generic LoRA keys ``diffusion_model.<module>.lora_down.weight`` (A),
  ``.lora_up.weight`` (B) and ``.alpha`` over the released module names (Lumina-Next; Lumina-Image 2.0 and
  Z-Image: ComfyUI's ``NextDiT``, fused ``attention.qkv``);
* ``kohya`` - kohya's ``lora_unet_<module with underscores>.lora_down / lora_up / alpha``: sd-scripts'
  Lumina 2 network over the released names (Lumina-Image 2.0), musubi-tuner's Z-Image network over
  ``ZImageTransformer2DModel``'s names (Z-Image). Not for Lumina-Next (no kohya network trains it).

Our factors sit on fused projections (``wqkv``, ``wkv_y``, ``w13``); with ``W' = W + s B A`` and ``W`` the row
stack of its parts, each part's update is ``s B_part A`` with ``B_part`` the part's row block of ``B``: the
parts share ``A`` and the export is exact. Query/key rows are permuted back to the released RoPE channel order
(:func:`lumina_modalities.image.interop.keys.lora_to_released`, :mod:`.unified_lora`).
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
from .unified_lora import kohya_name, unified_lora_parts


def trunk_config(adapter: AdapterFile) -> NextDiTConfig:
    """The trunk config the adapter was trained on (ValueError when the file does not record it)."""
    if adapter.model_config is None:
        raise ValueError("the adapter file does not record its trunk config; it cannot be exported")
    return NextDiTConfig.from_dict(adapter.model_config)


def unified_parts(
    adapter: AdapterFile, layout: str
) -> tuple[NextDiTConfig, list[tuple[str, Tensor, Tensor]]]:
    """A unified-family adapter's config and factors over ``layout``'s module names (:mod:`.unified_lora`)."""
    cfg = trunk_config(adapter)
    parts = []
    for module in adapter.modules:
        a, b = adapter.factors(module)
        parts += unified_lora_parts(module, a, b, cfg, layout)
    return cfg, parts


def released_parts(adapter: AdapterFile) -> tuple[NextDiTConfig, list[tuple[str, Tensor, Tensor]]]:
    """The adapter's trunk config and its factors over released module names: ``[(module, A, B_part)]``
    (Lumina-Next's for ``next_dit``, ComfyUI's ``NextDiT`` names for ``unified``)."""
    cfg = trunk_config(adapter)
    if cfg.family == "unified":
        return unified_parts(adapter, "comfy")
    splits = fused_splits(cfg)
    parts = []
    for module in adapter.modules:
        a, b = adapter.factors(module)
        parts += keys.lora_to_released(module, a, b, splits, cfg.head_dim)
    return cfg, parts


@LORA_FORMATS.register("diffusers")
class DiffusersLoraFormat(LoraExportFormat):
    """diffusers' LoRA for ``LuminaNextDiT2DModel`` (the shared query's factors go to both ``attn1.to_q`` and
    ``attn2.to_q``), ``Lumina2Transformer2DModel`` or ``ZImageTransformer2DModel`` (the trunk family and variant
    the adapter was trained on). Loads with the pipeline's ``load_lora_weights`` or the transformer's
    ``load_lora_adapter(..., prefix="transformer")``."""

    name = "diffusers"
    description = (
        "diffusers LoRA for LuminaNextDiT2DModel / Lumina2Transformer2DModel / ZImageTransformer2DModel (peft keys "
        "under 'transformer.', alpha/r folded into B)"
    )
    default_filename = "pytorch_lora_weights.safetensors"

    def export(self, adapter: AdapterFile, out: str | Path) -> list[Path]:
        if trunk_config(adapter).family == "unified":
            _, parts = unified_parts(adapter, "diffusers")
        else:
            cfg, released = released_parts(adapter)
            parts = [(module, a, b) for name, a, b in released
                     for module in keys.released_module_to_diffusers(name, cfg.separate_cross_query)]  # fmt: skip
        s = adapter.settings.scale
        state = {}
        for module, a, b in parts:
            state[f"transformer.{module}.lora_A.weight"] = a.clone()
            state[f"transformer.{module}.lora_B.weight"] = b * s
        return [self.write(state, self.output_file(out))]


@LORA_FORMATS.register("comfyui")
class ComfyUILoraFormat(LoraExportFormat):
    """ComfyUI's generic LoRA keys over the released module names (Lumina-Next: ``layers.N.attention.wq``,
    ``feed_forward.w1``...; Lumina-Image 2.0 / Z-Image: ComfyUI's ``NextDiT``, ``layers.N.attention.qkv``...). A
    separate cross-attention query has no place there (the released network shares its query): ValueError."""

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
        return [
            self.write(
                down_up_alpha(parts, adapter.settings.alpha, "diffusion_model."), self.output_file(out)
            )
        ]


@LORA_FORMATS.register("kohya")
class KohyaLoraFormat(LoraExportFormat):
    """kohya's LoRA keys ``lora_unet_<module, dots as underscores>.lora_down.weight / .lora_up.weight / .alpha``:
    sd-scripts' Lumina 2 network (``networks/lora_lumina.py``) over the released names with the fused
    ``attention.qkv`` (Lumina-Image 2.0), musubi-tuner's Z-Image network over ``ZImageTransformer2DModel``'s
    names (Z-Image: ``attention.to_q/to_k/to_v``, ``attention.to_out.0``). ComfyUI reads the Lumina-Image 2.0
    file as it is (its generic ``lora_unet_`` rule); diffusers' Z-Image loader reads the Z-Image file."""

    name = "kohya"
    description = "kohya sd-scripts / musubi-tuner LoRA keys: lora_unet_<module>.lora_up / lora_down / alpha"
    default_filename = "lora_kohya.safetensors"

    def export(self, adapter: AdapterFile, out: str | Path) -> list[Path]:
        cfg = trunk_config(adapter)
        if cfg.family != "unified":
            raise ValueError(
                "kohya's trainers have no Lumina-Next network (sd-scripts' lora_lumina.py is Lumina-Image 2.0's), "
                "so a Lumina-Next adapter has no kohya names: export it with --format comfyui or diffusers"
            )
        _, parts = unified_parts(adapter, "diffusers" if cfg.unified_variant == "z_image" else "comfy")
        parts = [(kohya_name(module), a, b) for module, a, b in parts]
        return [self.write(down_up_alpha(parts, adapter.settings.alpha, ""), self.output_file(out))]


def down_up_alpha(parts: list[tuple[str, Tensor, Tensor]], alpha: float, prefix: str) -> dict[str, Tensor]:
    """``<prefix><module>.lora_down.weight`` = A, ``.lora_up.weight`` = B, ``.alpha`` (the update is
    ``alpha / rank * up @ down``, rank = the rows of ``down``)."""
    state = {}
    for module, a, b in parts:
        state[f"{prefix}{module}.lora_down.weight"] = a.clone()
        state[f"{prefix}{module}.lora_up.weight"] = b
        state[f"{prefix}{module}.alpha"] = torch.tensor(float(alpha))
    return state


def export_diffusers(adapter: str | Path | AdapterFile, out: str | Path) -> Path:
    """Write ``adapter`` in the diffusers LoRA format (a ``.safetensors`` path, or a folder that gets
    ``pytorch_lora_weights.safetensors``); returns the file."""
    return export_adapter(adapter, out, "diffusers")[0]


def export_comfyui(adapter: str | Path | AdapterFile, out: str | Path) -> Path:
    """Write ``adapter`` in ComfyUI's generic LoRA key format (a ``.safetensors`` path, or a folder that gets
    ``lora_comfyui.safetensors``); returns the file."""
    return export_adapter(adapter, out, "comfyui")[0]


def export_kohya(adapter: str | Path | AdapterFile, out: str | Path) -> Path:
    """Write a unified-family ``adapter`` with kohya's ``lora_unet_`` keys (a ``.safetensors`` path, or a folder
    that gets ``lora_kohya.safetensors``); returns the file."""
    return export_adapter(adapter, out, "kohya")[0]

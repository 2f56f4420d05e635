"""The public formats of the Lumina-Next image model: key maps (:mod:`.keys`: released <-> ours <-> diffusers),
loaders and exporters (:mod:`.formats`), the image-level view :class:`LuminaImageModel` (:mod:`.model`) and the
LoRA export formats ``diffusers`` / ``comfyui`` / ``kohya`` (:mod:`.lora_export`, for both trunk families). The checkpoint formats ``released`` /
``diffusers`` that ``lumina convert`` reads are registered in :mod:`lumina_modalities.image.checkpoints`.

    from lumina_modalities.image.interop import from_diffusers, to_released_state_dict
    image_model = from_diffusers(diffusers_transformer)      # forward(x (B,C,H,W), t, caption_feats, caption_mask)

Lumina-Image 2.0 (diffusers' ``Lumina2Transformer2DModel``, the released / ComfyUI layouts) loads into the
``unified`` trunk family: :func:`from_lumina2` (:mod:`.lumina2`, key maps :mod:`.unified_keys`); Z-Image (the
release / diffusers folder, ComfyUI's file) into its ``z_image`` variant: :func:`from_z_image` (:mod:`.z_image`,
key maps :mod:`.z_image_keys`). ``to_lumina2_*`` / ``to_z_image_*`` write the public layouts back.
"""

from .formats import (
    converted_meta,
    diffusers_config,
    from_diffusers,
    from_released,
    image_extra,
    infer_config,
    load_converted,
    to_diffusers_state_dict,
    to_released_state_dict,
)
from .keys import readout_permutation
from .lora_export import (
    ComfyUILoraFormat,
    DiffusersLoraFormat,
    KohyaLoraFormat,
    export_comfyui,
    export_diffusers,
    export_kohya,
)
from .lumina2 import from_lumina2, lumina2_config, to_lumina2_diffusers, to_lumina2_released
from .model import LuminaImageModel, patch_positions
from .z_image import from_z_image, to_z_image_comfyui, to_z_image_diffusers, z_image_config

__all__ = [
    "ComfyUILoraFormat",
    "DiffusersLoraFormat",
    "KohyaLoraFormat",
    "LuminaImageModel",
    "converted_meta",
    "diffusers_config",
    "export_comfyui",
    "export_diffusers",
    "export_kohya",
    "from_diffusers",
    "from_lumina2",
    "from_released",
    "from_z_image",
    "image_extra",
    "infer_config",
    "load_converted",
    "lumina2_config",
    "patch_positions",
    "readout_permutation",
    "to_diffusers_state_dict",
    "to_lumina2_diffusers",
    "to_lumina2_released",
    "to_released_state_dict",
    "to_z_image_comfyui",
    "to_z_image_diffusers",
    "z_image_config",
]

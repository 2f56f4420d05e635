"""Interoperability with foreign checkpoint formats: the contract plugins register formats with
(:mod:`lumina_core.interop.checkpoint_format`, ``CHECKPOINT_FORMATS``) and the key maps of the Lumina-Next image
model's released and diffusers layouts (the image plugin's ``released`` and ``diffusers`` formats call them).

    from lumina_core.interop import from_diffusers, from_released, to_diffusers_state_dict, to_released_state_dict, convert
    image_model = from_diffusers(diffusers_transformer)      # forward(x (B,C,H,W), t, caption_feats, caption_mask)
    convert("consolidated.00-of-01.pth", "out/", src_format="released", preset="2B")
"""

from lumina_core.interop.checkpoint_format import CheckpointFormat, LoadedCheckpoint, checkpoint_format
from lumina_core.interop.formats import (
    convert,
    diffusers_config,
    from_diffusers,
    from_released,
    infer_config,
    load_converted,
    to_diffusers_state_dict,
    to_released_state_dict,
)
from lumina_core.interop.image import LuminaImageModel, patch_positions
from lumina_core.interop.keys import readout_permutation

__all__ = [
    "CheckpointFormat",
    "LoadedCheckpoint",
    "LuminaImageModel",
    "checkpoint_format",
    "convert",
    "diffusers_config",
    "from_diffusers",
    "from_released",
    "infer_config",
    "load_converted",
    "patch_positions",
    "readout_permutation",
    "to_diffusers_state_dict",
    "to_released_state_dict",
]

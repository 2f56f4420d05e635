"""Interoperability with the public formats of Lumina-Next: the released checkpoints and diffusers.

    from lumina_core.interop import from_diffusers, from_released, to_diffusers_state_dict, to_released_state_dict, convert
    image_model = from_diffusers(diffusers_transformer)      # forward(x (B,C,H,W), t, caption_feats, caption_mask)
    convert("consolidated.00-of-01.pth", "out/", src_format="released", preset="2B")
"""

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
    "LuminaImageModel",
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

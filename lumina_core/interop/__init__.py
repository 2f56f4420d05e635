"""Interoperability with foreign checkpoint formats, format-agnostic: the contract plugins register formats with
(:mod:`lumina_core.interop.checkpoint_format`, ``CHECKPOINT_FORMATS``), our converted format (``convert``,
``read_converted``, ``converted_state_dict``) and state-dict helpers a format may use. The key maps of a foreign
layout belong to the plugin that registers the format (the image plugin's ``released`` and ``diffusers``:
:mod:`lumina_modalities.image.interop`).

    from lumina_core.interop import convert, read_converted
    convert("consolidated.00-of-01.pth", "out/", src_format="released", preset="2B")
    loaded = read_converted("out/")          # LoadedCheckpoint(model, task, extra)
    export("out/", "lumina_2.safetensors", dst_format="lumina2", layout="comfyui")   # back to a public layout
    export("runs/my_finetune", "tuned.safetensors", dst_format="lumina2")   # a full fine-tune of it, EMA weights
"""

from lumina_core.interop.checkpoint_format import (
    CheckpointFormat,
    LoadedCheckpoint,
    RunWeights,
    checkpoint_format,
)
from lumina_core.interop.formats import (
    check_keys,
    checkpoint_meta,
    convert,
    converted_state_dict,
    fused_splits,
    load_strict,
    read_converted,
    read_state_dict,
)
from lumina_core.interop.to_public import export, read_run_weights

__all__ = [
    "CheckpointFormat",
    "LoadedCheckpoint",
    "RunWeights",
    "check_keys",
    "checkpoint_format",
    "checkpoint_meta",
    "convert",
    "converted_state_dict",
    "export",
    "fused_splits",
    "load_strict",
    "read_converted",
    "read_run_weights",
    "read_state_dict",
]

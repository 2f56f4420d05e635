"""Write a state dict in a public layout's files: a single file (the original release's ``.pth`` /
``.safetensors``, ComfyUI's ``.safetensors`` with every key under ``model.diffusion_model.``) or a diffusers
model folder (``config.json`` + ``diffusion_pytorch_model.safetensors``, what ``from_pretrained`` reads).

Nothing is overwritten: an existing destination is refused. ``.pth`` files hold a flat tensor dict
(``torch.save``), which ``torch.load(weights_only=True)`` reads without unpickling code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]
#: ComfyUI's prefix of the diffusion model's keys in a checkpoint file (its loader also takes files without it)
COMFY_PREFIX = "model.diffusion_model."


def _fresh(dst: Path) -> None:
    if dst.exists():
        raise ValueError(f"{dst} exists; give a new path (nothing is overwritten)")
    dst.parent.mkdir(parents=True, exist_ok=True)


def write_single_file(
    state: StateDict, dst: Path, prefix: str = "", suffixes: tuple[str, ...] = (".safetensors",)
) -> Path:
    """``state`` (keys under ``prefix``) as one file at ``dst``, whose suffix picks safetensors or torch.save."""
    if dst.suffix not in suffixes:
        raise ValueError(
            f"this layout is one file: give a path ending in {' or '.join(suffixes)} (got {str(dst)!r})"
        )
    _fresh(dst)
    tensors = {prefix + k: v.detach().contiguous() for k, v in state.items()}
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(dst))
    else:
        torch.save(tensors, str(dst))
    return dst


def write_diffusers_folder(
    state: StateDict, dst: Path, class_name: str, config: dict[str, Any]
) -> list[Path]:
    """A diffusers model folder at ``dst``: ``config.json`` (``_class_name`` and the constructor arguments)
    and ``diffusion_pytorch_model.safetensors``."""
    from safetensors.torch import save_file

    if dst.suffix:
        raise ValueError(
            f"the diffusers layout is a folder: give a path without a file suffix (got {str(dst)!r})"
        )
    _fresh(dst)
    dst.mkdir()
    weights = dst / "diffusion_pytorch_model.safetensors"
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(weights), metadata={"format": "pt"})
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    (dst / "config.json").write_text(json.dumps({"_class_name": class_name, **plain}, indent=2))
    return [dst / "config.json", weights]

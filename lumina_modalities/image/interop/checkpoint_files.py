"""Where a checkpoint's tensors are on disk: a diffusers transformer folder (the layout every diffusers model of
the Lumina family is saved in) or a released ``consolidated*`` file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lumina_core.interop.formats import read_state_dict

StateDict = dict[str, Any]


def diffusers_folder(path: Path) -> tuple[StateDict, dict[str, Any]]:
    """State dict and config of a diffusers transformer folder (single file or sharded safetensors)."""
    if path.is_file():
        return read_state_dict(path), {}
    if (path / "transformer" / "config.json").is_file():
        path = path / "transformer"
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    single = path / "diffusion_pytorch_model.safetensors"
    index = path / "diffusion_pytorch_model.safetensors.index.json"
    if single.is_file():
        return read_state_dict(single), config
    if index.is_file():
        state: StateDict = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(read_state_dict(path / shard))
        return state, config
    raise ValueError(f"no diffusion_pytorch_model.safetensors (or sharded index) in {path}")


def released_file(path: Path) -> Path:
    """The released checkpoint file at ``path``: the file itself, or the one ``consolidated*`` file of a folder."""
    if path.is_file():
        return path
    found = sorted(p for p in path.glob("consolidated*") if p.suffix in (".pth", ".safetensors"))
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one consolidated*.pth / consolidated*.safetensors in {path}; found "
            f"{[p.name for p in found]} (model-parallel shards must be merged first)"
        )
    return found[0]

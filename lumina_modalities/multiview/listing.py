"""The scene folders ``lumina data pack --modality multiview`` packs: each folder holding a ``cameras.json`` as
one ``PackSample`` (see :mod:`.packing` for the shard layout), or the reason it cannot be packed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .cameras import check_rigid

logger = logging.getLogger("lumina.data")


@dataclass
class PackListing:
    """The scenes :func:`list_scenes` found: ``samples`` to pack and ``skipped`` ``(scene, reason)`` pairs."""

    samples: list = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _scene_sample(folder: Path, root: Path) -> Any:
    """One scene folder as a ``PackSample``; ValueError saying why it cannot be packed."""
    from PIL import Image, UnidentifiedImageError

    from lumina_core.data.pack import PackSample, shard_key

    try:
        spec = json.loads((folder / "cameras.json").read_text())
        entries = list(spec["views"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"unreadable cameras.json ({type(err).__name__}: {err})") from err
    if not entries:
        raise ValueError("cameras.json lists no views")
    try:
        check_rigid(torch.tensor([e.get("c2w") for e in entries], dtype=torch.float64))
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"cameras are not 4 x 4 matrices ({err})") from err
    members: dict[str, Path | bytes] = {}
    sizes = set()
    for i, e in enumerate(entries):
        path = folder / str(e.get("file", ""))
        if not e.get("file") or not path.is_file():
            raise ValueError(f"view file {e.get('file')!r} listed in cameras.json is missing")
        try:
            with Image.open(path) as im:  # the header only: no picture is decoded
                sizes.add(im.size)
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(f"view file {e.get('file')!r} is not a readable picture ({err})") from err
        member = f"view{i:03d}{path.suffix.lower() or '.png'}"
        members[member] = path
        e["file"] = member
    if len(sizes) != 1:
        raise ValueError(f"views of different sizes {sorted(sizes)}; all views must be the same size")
    rel = folder.relative_to(root).as_posix()
    rel = rel if rel != "." else folder.name
    members["json"] = (json.dumps(spec, indent=1) + "\n").encode("utf-8")
    members["txt"] = str(spec.get("caption", "")).encode("utf-8")
    members["path"] = rel.encode("utf-8")
    return PackSample(shard_key(rel), members, missing_caption=not spec.get("caption"))


def list_scenes(root: str | Path) -> PackListing:
    """Every scene folder (a directory holding ``cameras.json``) under ``root``, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"multiview folder {root} does not exist (expected scene folders with cameras.json)"
        )
    folders = sorted(p.parent for p in root.rglob("cameras.json"))
    if not folders:
        raise FileNotFoundError(
            f"no scene under {root}: each scene is a folder with its views and a cameras.json "
            '({"views": [{"file": ..., "c2w": 4x4}, ...]})'
        )
    out = PackListing()
    for folder in folders:
        try:
            out.samples.append(_scene_sample(folder, root))
        except ValueError as err:
            name = folder.relative_to(root).as_posix()
            out.skipped.append((name, str(err)))
            logger.warning("multiview pack: skipped scene %s: %s", name, err)
    if out.skipped:
        logger.warning(
            "multiview pack: skipped %d of %d scenes (reasons above)", len(out.skipped), len(folders)
        )
    return out


def scene_samples(root: str | Path) -> list:
    """The ``PackSample`` of every packable scene under ``root`` (see :func:`list_scenes`)."""
    return list_scenes(root).samples

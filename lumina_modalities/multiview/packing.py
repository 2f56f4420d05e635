"""Scenes of posed views in webdataset shards: what ``lumina data pack --modality multiview`` writes, and the
``multiview_shards`` dataset that reads it back.

A scene folder (``cameras.json`` + its view pictures, the ``multiview_folder`` layout) becomes one shard
sample keyed by the folder's relative path, with the members

* ``json``: the scene's ``cameras.json``, its view entries renamed to the members below;
* ``view000.png``, ``view001.png``, ...: the view files' bytes, unchanged (their own extension);
* ``txt``: the caption (empty when there is none); ``path``: the folder's relative path.

Packing copies bytes and decodes no picture, but it refuses what could never be read back: a scene whose
``cameras.json`` is unreadable, lists a missing view file, a camera that is not a rigid transform, or views
whose picture headers give different sizes is skipped, with one log line naming the scene and the reason and
a closing count (:class:`PackListing` keeps them for callers).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lumina_core.data import LuminaDataset
from lumina_core.data.robust import CorruptSampleError
from lumina_core.registry import DATASETS

from .cameras import check_rigid
from .datasets import CONDITIONS, decode_scene

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


@DATASETS.register("multiview_shards")
class MultiviewShards(LuminaDataset):
    """Scenes packed by ``lumina data pack SRC DST --modality multiview``, read by index from the shards.

    Items are those of ``multiview_folder`` (same decoding, same checks: a scene that cannot be read raises
    :class:`CorruptSampleError` naming ``<shard>:<key>``, which the trainer's skip-and-count policy counts).

    Args:
        path: shard paths (a file, a folder of ``*.tar``, a glob or a brace pattern).
        size, views, condition, val_fraction, split: as for ``multiview_folder``.
    """

    modality = "multiview"

    def __init__(self, path: str, size: int | None = None, views: int | None = None, condition: str = "text",
                 val_fraction: float = 0.0, split: str = "train") -> None:  # fmt: skip
        from lumina_core.data.shards import IndexedShards

        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        self.index = IndexedShards(path, where=lambda m: "json" in m and any(e.startswith("view") for e in m))
        if not len(self.index):
            raise ValueError(
                f"multiview_shards: no packed scene in {self.index.urls} (samples with a json member and view "
                "members, as `lumina data pack SRC DST --modality multiview` writes)"
            )
        entries = list(range(len(self.index)))
        if val_fraction:
            k = max(2, round(1 / val_fraction))
            entries = [i for i in entries if (i % k == k - 1) == (split != "train")]
        self.entries, self.size, self.views, self.condition = entries, size, views, condition
        self.condition_kind, self.split = condition, split

    def __len__(self) -> int:
        return len(self.entries)

    def item_name(self, index: int) -> str:
        return self.index.name(self.entries[index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} scenes")
        sample = self.index.read(self.entries[int(index)])
        name = self.item_name(int(index))
        if "json" not in sample:
            raise CorruptSampleError("no cameras (json member)", name)
        return decode_scene(sample["json"], sample.get, name, self.size, self.views, self.condition)

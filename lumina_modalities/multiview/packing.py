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
a closing count (:class:`.listing.PackListing` keeps them for callers; the listing lives in
:mod:`.listing`).
"""

from __future__ import annotations

from typing import Any

from lumina_core.data import LuminaDataset
from lumina_core.data.robust import CorruptSampleError
from lumina_core.registry import DATASETS

from .datasets import CONDITIONS, decode_scene
from .listing import PackListing, list_scenes, scene_samples  # noqa: F401  (what `lumina data pack` lists)


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

"""Point-cloud datasets (registered in ``DATASETS`` with ``modality = "pointcloud"``).

Every item is ``{"sample": (N, 3|6) float tensor, "condition": class id | caption | None, "meta": {...}}``
with ``meta["class"]`` (class name) and ``meta["name"]`` (where the cloud comes from).

* ``shapes_lite``: procedural trimesh primitives and compositions (:mod:`.shapes`), balanced over classes,
  seeded per (seed, split, index) so an item is the same every time it is read.
* ``mesh_folder``: a user's folder of OBJ/PLY/STL/OFF meshes; the class is the sub-folder name, the caption
  the text of ``NAME.txt`` (or ``NAME.obj.txt``) beside ``NAME.obj``. Bad meshes (no faces, NaN, zero scale)
  are rejected by name at start-up and the rest still loads (see ``rejected``).
* ``mesh_shards``: webdataset shards packed from such a folder by ``lumina data pack``.

``score(samples, items)`` gives the PointFlow metrics and the nearest-reference class accuracy
(:mod:`.evaluation`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from lumina_core.data import Checker, ConditionParameter, LuminaDataset, LuminaStream
from lumina_core.registry import DATASETS

from .evaluation import score_pointclouds
from .meshes import MESH_EXTENSIONS, BadMeshError, check_mesh, load_mesh, sample_surface
from .shapes import CLASSES, make_shape

log = logging.getLogger(__name__)

SPLITS = {"train": 0, "val": 1, "test": 2}
CONDITION_MODES = ("class", "text", "none")


def _check_common(split: str, condition: str, num_points: int) -> None:
    problems = []
    if split not in SPLITS:
        problems.append(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if condition not in CONDITION_MODES:
        problems.append(f"condition must be one of {CONDITION_MODES}, got {condition!r}")
    if num_points <= 0:
        problems.append(f"num_points must be positive, got {num_points}")
    if problems:
        raise ValueError("; ".join(problems))


class _Scored(ConditionParameter, Checker):
    """Mixin: the PointFlow metrics and nearest-reference accuracy for generated clouds vs their items."""

    modality = "pointcloud"

    normalization: str = "sphere"
    emd: bool = True
    emd_points: int = 128

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        return score_pointclouds(samples, items, self.normalization, emd=self.emd, emd_points=self.emd_points)


@DATASETS.register("shapes_lite")
class ShapesLite(_Scored, LuminaDataset):
    """Procedural shapes: ``num_items`` clouds of ``num_points`` surface points, classes in turn.

    Args:
        num_items: dataset length.
        num_points: points per cloud.
        classes: subset of :data:`.shapes.CLASSES` (default all); class ids are indices into this list.
        condition: what ``item["condition"]`` is: ``"class"`` (id), ``"text"`` (caption) or ``"none"``.
        split: ``"train"``, ``"val"`` or ``"test"``: disjoint random streams for the same seed.
        seed: base seed.
        rotation: ``"z"`` (about the vertical axis), ``"so3"`` or ``"none"``.
        normals: also return unit normals (N, 6).
        sampler: ``"trimesh"`` or ``"pytorch3d"`` surface sampling.
        normalization, emd, emd_points: how :meth:`score` compares clouds.
        cache: keep built items in memory (an item is the same every time, and building one costs ~15 ms).
    """

    def __init__(
        self,
        num_items: int = 1024,
        num_points: int = 512,
        classes: Sequence[str] | None = None,
        condition: str = "class",
        split: str = "train",
        seed: int = 0,
        rotation: str = "z",
        normals: bool = False,
        sampler: str = "trimesh",
        normalization: str = "sphere",
        emd: bool = True,
        emd_points: int = 128,
        cache: bool = True,
    ) -> None:
        _check_common(split, condition, num_points)
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None
        self.classes = list(classes) if classes is not None else list(CLASSES)
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown or not self.classes:
            raise ValueError(f"shapes_lite: unknown classes {unknown}; known: {', '.join(CLASSES)}")
        if num_items <= 0:
            raise ValueError(f"shapes_lite: num_items must be positive, got {num_items}")
        self.num_items, self.num_points, self.condition = int(num_items), int(num_points), condition
        self.split, self.seed, self.rotation = split, int(seed), rotation
        self.normals, self.sampler = bool(normals), sampler
        self.normalization, self.emd, self.emd_points = normalization, bool(emd), int(emd_points)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_items:
            raise IndexError(f"shapes_lite index {index} out of range [0, {self.num_items})")
        if self.cache is not None and index in self.cache:
            item = self.cache[index]
            return {
                "sample": item["sample"].clone(),
                "condition": item["condition"],
                "meta": dict(item["meta"]),
            }
        class_id = index % len(self.classes)
        cls = self.classes[class_id]
        seq = np.random.SeedSequence([self.seed, SPLITS[self.split], index])
        rng = np.random.default_rng(seq)
        mesh, caption, params = make_shape(cls, rng, rotation=self.rotation)
        points = sample_surface(
            mesh,
            self.num_points,
            seed=int(seq.generate_state(1)[0]),
            normals=self.normals,
            sampler=self.sampler,
        )
        cond = {"class": class_id, "text": caption, "none": None}[self.condition]
        meta = {
            "class": cls,
            "class_id": class_id,
            "caption": caption,
            "name": f"shapes_lite/{self.split}/{index}",
            "params": params,
        }
        item = {"sample": points, "condition": cond, "meta": meta}
        if self.cache is not None:
            self.cache[index] = {"sample": points.clone(), "condition": cond, "meta": dict(meta)}
        return item


def _class_of(key: str) -> str | None:
    """The class of a folder key ``"chairs/c1"`` is its first folder; a key with no folder has none."""
    parts = key.split("/")
    return parts[0] if len(parts) > 1 else None


class _MeshItems(_Scored):
    """What ``mesh_folder`` and ``mesh_shards`` share: settings, classes, and mesh -> item."""

    def _setup(self, num_points, condition, normals, sampler, seed, split, normalization, emd, emd_points):
        _check_common(split, condition, num_points)
        self.num_points, self.condition, self.normals, self.sampler = (
            int(num_points),
            condition,
            normals,
            sampler,
        )
        self.seed, self.split = int(seed), split
        self.normalization, self.emd, self.emd_points = normalization, bool(emd), int(emd_points)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _item(self, mesh: Any, key: str, name: str, caption: str, index: int) -> dict[str, Any]:
        check_mesh(mesh, name)
        seed = int(np.random.SeedSequence([self.seed, SPLITS[self.split], index]).generate_state(1)[0])
        points = sample_surface(mesh, self.num_points, seed, normals=self.normals, sampler=self.sampler)
        cls = _class_of(key)
        if self.condition == "class":
            if cls is None or cls not in self.classes:
                raise ValueError(
                    f"{name}: not in a known class sub-folder ({self.classes}); use condition='text'"
                )
            cond: Any = self.classes.index(cls)
        elif self.condition == "text":
            cond = caption or (cls.replace("_", " ") if cls else "")
        else:
            cond = None
        meta = {
            "class": cls,
            "class_id": self.classes.index(cls) if cls in self.classes else None,
            "caption": caption,
            "name": name,
        }
        return {"sample": points, "condition": cond, "meta": meta}


@DATASETS.register("mesh_folder")
class MeshFolder(_MeshItems, LuminaDataset):
    """A folder of meshes (``root/<class>/<name>.obj`` + optional ``<name>.txt`` caption), ``num_points`` each.

    Files are listed by :func:`lumina_core.data.folder.list_pairs` (a missing caption reads as ""). The
    class is the first sub-folder; the condition is its index in the sorted class names (``"class"``), the
    caption or else the class name (``"text"``), or None.

    Args:
        root: the folder, searched recursively for OBJ/PLY/STL/OFF files.
        num_points, condition, normals, sampler, seed, split, normalization: as for ``shapes_lite``.
        check: load and check every mesh at start-up and keep only the good ones; ``rejected`` lists the
            others as ``(file, reason)`` and each is logged as a warning naming the file. With
            ``check=False`` a bad mesh raises :class:`.meshes.BadMeshError` when read, which
            ``lumina_core.data.robust.SkipCorrupt`` skips and counts.
    """

    def __init__(
        self,
        root: str,
        num_points: int = 512,
        condition: str = "class",
        normals: bool = False,
        sampler: str = "trimesh",
        seed: int = 0,
        split: str = "train",
        check: bool = True,
        extensions: Sequence[str] = MESH_EXTENSIONS,
        normalization: str = "sphere",
        emd: bool = True,
        emd_points: int = 128,
    ) -> None:
        from lumina_core.data.folder import list_pairs

        self._setup(num_points, condition, normals, sampler, seed, split, normalization, emd, emd_points)
        self.root = Path(root)
        pairs = list_pairs(self.root, extensions=extensions, missing_caption="empty")
        self.rejected: list[tuple[str, str]] = []
        if check:
            good = []
            for pair in pairs:
                try:
                    check_mesh(load_mesh(pair.path), str(pair.path))
                    good.append(pair)
                except BadMeshError as exc:
                    log.warning("mesh_folder: skipping %s", exc)
                    self.rejected.append((str(pair.path), str(exc)))
            pairs = good
            if self.rejected:
                log.warning(
                    "mesh_folder: rejected %d of %d meshes under %s",
                    len(self.rejected),
                    len(self.rejected) + len(pairs),
                    self.root,
                )
        if not pairs:
            raise ValueError(f"mesh_folder: every mesh under {self.root} was rejected: {self.rejected}")
        self.pairs = pairs
        self.classes = sorted({_class_of(p.key) for p in pairs} - {None})

    @classmethod
    def list_samples(cls, root: str, missing_caption: str = "empty") -> list:
        """The folder's meshes for ``lumina data pack --modality pointcloud``: each mesh with its caption and
        its relative path (the class is its first folder); ``mesh_shards`` reads the shards back. Meshes are
        copied, not checked: a bad one is skipped and counted when read."""
        from lumina_core.data.pack import folder_samples

        return folder_samples(root, MESH_EXTENSIONS, missing_caption)

    def __len__(self) -> int:
        return len(self.pairs)

    def item_name(self, index: int) -> str:
        return str(self.pairs[index].path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        mesh = load_mesh(pair.path)
        return self._item(mesh, pair.key, str(pair.path), pair.caption(), index)


@DATASETS.register("mesh_shards")
class MeshShards(_MeshItems, LuminaStream):
    """Meshes from webdataset shards packed by ``lumina data pack``: streamed, or read by index.

    Each shard sample holds the mesh bytes under its extension (``obj``, ``ply``, ``stl``, ``off``), the
    caption under ``txt`` and the original relative path under ``path``; the class is the path's first
    folder. A bad mesh (unreadable, no faces, NaN, zero scale) is skipped and counted by
    :class:`lumina_core.data.shards.ShardDataset` (``skipped``, ``summary()``), logged with its shard and key.

    Iterating streams the shards. ``len(ds)`` and ``ds[i]`` give map-style access too (e.g. ``evaluate()``
    reading ``val[i]``) through a :class:`lumina_core.data.shards.IndexedShards` built on first use; there
    a bad sample raises :class:`.meshes.BadMeshError` (a ``CorruptSampleError``), which
    ``lumina_core.data.robust.SkipCorrupt`` skips and counts, as for ``mesh_folder`` with ``check=False``.
    Item ``i`` is the ``i``-th packed sample in shard order, identical to the streamed item of that key.

    Args:
        urls: shard paths or patterns (``"data/shard-{000000..000003}.tar"``, a glob, or a list).
        classes: class names in id order; default: the sorted first folders of all packed paths (found by
            one pass over the shards at start-up).
        shuffle_shards, shuffle_buffer, resampled, epoch_length, repeat: as for ``ShardDataset`` (URLs and
            ``pipe:`` commands stream too; ``resampled`` with ``epoch_length`` draws shards with replacement;
            ``repeat`` runs epochs back to back for ever, as training wants).
        num_points, condition, normals, sampler, seed, split, normalization: as for ``mesh_folder``.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        num_points: int = 512,
        condition: str = "class",
        classes: Sequence[str] | None = None,
        normals: bool = False,
        sampler: str = "trimesh",
        seed: int = 0,
        split: str = "train",
        shuffle_shards: bool = False,
        shuffle_buffer: int = 0,
        normalization: str = "sphere",
        emd: bool = True,
        emd_points: int = 128,
        resampled: bool = False,
        epoch_length: int | None = None,
        repeat: bool = False,
    ) -> None:
        from lumina_core.data.shards import ShardDataset

        self._setup(num_points, condition, normals, sampler, seed, split, normalization, emd, emd_points)
        self.stream = ShardDataset(
            urls, self.decode, shuffle_shards=shuffle_shards, shuffle_buffer=shuffle_buffer, seed=seed,
            resampled=resampled, epoch_length=epoch_length, repeat=repeat,
        )  # fmt: skip
        if classes is None:  # one pass over every shard's sample paths (give classes to skip it)
            keys = [self._key(raw) for url in self.stream.urls for raw in self.stream.read_shard(url)]
            classes = sorted({_class_of(k) for k in keys} - {None})
        self.classes = list(classes)

    @staticmethod
    def _key(raw: dict[str, Any]) -> str:
        path = raw.get("path")
        return bytes(path).decode("utf-8").rsplit(".", 1)[0] if path is not None else str(raw["__key__"])

    def decode(self, raw: dict[str, Any]) -> dict[str, Any]:
        """One raw shard sample (dict of bytes) -> item; raises BadMeshError for a bad mesh."""
        import zlib

        from lumina_core.data.robust import sample_name
        from lumina_core.data.shards import sample_caption

        name = sample_name(raw)
        exts = [e for e in MESH_EXTENSIONS if e in raw]
        if not exts:
            raise BadMeshError(
                f"no mesh in the sample (keys {sorted(k for k in raw if not k.startswith('__'))})", name=name
            )
        mesh = load_mesh(bytes(raw[exts[0]]), name=name, file_type=exts[0])
        key = self._key(raw)
        return self._item(mesh, key, name, sample_caption(raw), zlib.crc32(key.encode("utf-8")))

    def __iter__(self):
        return iter(self.stream)

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue the stream from a saved position (see :func:`lumina_core.data.stream.stream_loader`)."""
        self.stream.load_state_dict(state)

    @property
    def index(self):
        """The shards' :class:`~lumina_core.data.shards.IndexedShards` (scanned once, on first use)."""
        if getattr(self, "_index", None) is None:
            from lumina_core.data.shards import IndexedShards

            self._index = IndexedShards(self.stream.urls)
        return self._index

    def __len__(self) -> int:
        return len(self.index)

    def item_name(self, index: int) -> str:
        return self.index.name(index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.decode(self.index.read(index))

    @property
    def skipped(self) -> int:
        return self.stream.skipped

    def summary(self) -> str:
        return self.stream.summary()

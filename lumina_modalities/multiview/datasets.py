"""Multi-view datasets: procedural scenes rendered with ground truth, and a user's folder of posed views.

Items are ``{"sample": (V, C + 12, H, W), "condition": caption | class id | None, "meta": {...}}`` (the sample
layout of :mod:`.plugin`). Procedural items carry the scene description in ``meta["scene"]`` and the dataset's
``score`` grades generated views against renders of that scene at the same poses (see :mod:`.metrics`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.data import Checker, LuminaDataset
from lumina_core.data.robust import CorruptSampleError, SkipStats
from lumina_core.registry import DATASETS

from .cameras import check_rigid, orbit
from .metrics import score_views
from .plugin import CAM, attach_cameras, cameras_of
from .render import COLORS, KINDS, Scene, random_scene, render

CONDITIONS = ("text", "class", "none")
#: adherence of a random guess: colour 1 in 6, shape 1 in 4, averaged
ADHERENCE_CHANCE = (1 / len(COLORS) + 1 / len(KINDS)) / 2


@DATASETS.register("multiview_scenes")
class MultiviewScenes(Checker, LuminaDataset):
    """Random scenes of one or two primitives rendered from an orbit, with captions from the description.

    Scene ``i`` of a split is drawn from a generator seeded by ``(seed, split, i)``, so items are reproducible
    and the train and val splits never share a scene. Each item's orbit starts at a random azimuth (cameras are
    relative to the first view, so the model sees the same conditioning for every start).

    Args:
        views: V per item; size: H = W in pixels; max_objects: 1 or 2 primitives per scene.
        condition: ``"text"`` (the caption), ``"class"`` (``4 colour + kind`` of the first object, 24
            classes) or ``"none"``.
        elevation, elevation_jitter: orbit elevation and the +- range of a uniform random offset (degrees).
        radius, fov: camera distance from the origin and vertical field of view (degrees).
        span: azimuth range the V views cover (360: a closed orbit).
        azimuth_jitter: each view but the first moves by a uniform random +- this many degrees along the orbit,
            so training sees a continuum of relative poses rather than V fixed ones.
        supersample: colour samples per pixel side (anti-aliasing).
        length: number of distinct scenes; seed: base seed; split: ``"train"`` or ``"val"``.
        cache: keep rendered items in memory (rendering costs tens of ms per item).
    """

    modality = "multiview"
    score_is_mean = True  #: ``score`` is the mean over samples (NaN left out): ``lumina eval`` renders each once

    def __init__(
        self,
        views: int = 4,
        size: int = 32,
        max_objects: int = 1,
        condition: str = "text",
        elevation: float = 20.0,
        elevation_jitter: float = 0.0,
        radius: float = 3.2,
        fov: float = 40.0,
        span: float = 360.0,
        azimuth_jitter: float = 0.0,
        supersample: int = 2,
        length: int = 2000,
        seed: int = 0,
        split: str = "train",
        cache: bool = True,
    ) -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        if views < 1 or size < 1 or length < 1 or max_objects not in (1, 2):
            raise ValueError(
                f"need views >= 1, size >= 1, length >= 1 and max_objects 1 or 2; got {views}, {size}, {length}, "
                f"{max_objects}"
            )
        self.views, self.size, self.max_objects, self.condition = (
            int(views),
            int(size),
            int(max_objects),
            condition,
        )
        self.elevation, self.elevation_jitter = float(elevation), float(elevation_jitter)
        self.radius, self.fov, self.span, self.supersample = (
            float(radius),
            float(fov),
            float(span),
            int(supersample),
        )
        self.length, self.seed, self.split, self.cache = int(length), int(seed), str(split), bool(cache)
        self.azimuth_jitter = float(azimuth_jitter)
        self.condition_kind = condition
        self._items: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> tuple[Scene, Tensor]:
        """Scene ``index`` and its cameras (V, 4, 4)."""
        offset = 0 if self.split == "train" else 1_000_003
        gen = torch.Generator().manual_seed(self.seed * 7_919_011 + offset + int(index))
        scene = random_scene(gen, self.max_objects)
        az0 = 360.0 * float(torch.rand(1, generator=gen))
        elev = self.elevation + self.elevation_jitter * (2 * float(torch.rand(1, generator=gen)) - 1)
        shifts = (2 * torch.rand(self.views, generator=gen) - 1) * self.azimuth_jitter
        shifts[0] = 0.0
        azimuths = [az0 + v * self.span / self.views + float(shifts[v]) for v in range(self.views)]
        return scene, orbit(self.views, elev, self.radius, azimuths=azimuths)

    def item_for(self, scene: Scene, c2w: Tensor) -> dict[str, Any]:
        """The dataset item of ``scene`` seen by cameras ``c2w`` (rendered now)."""
        out = render(scene, c2w, self.size, self.size, self.fov, self.supersample, geometry=False)
        sample = attach_cameras(out["rgb"] * 2 - 1, c2w)
        cond = {"text": scene.caption(), "class": scene.class_id(), "none": None}[self.condition]
        meta = {"scene": json.dumps(scene.to_dict()), "caption": scene.caption(), "fov": self.fov}
        return {"sample": sample, "condition": cond, "meta": meta}

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        if index in self._items:
            return self._items[index]
        item = self.item_for(*self.scene(index))
        if self.cache:
            self._items[index] = item
        return item

    def score(self, samples: list[Tensor], items: list[dict], given_views: int = 0) -> dict[str, float]:
        """Mean of :func:`score_views` over samples (their cameras are those they were generated for); the
        first ``given_views`` views of each were given, not generated, and are not graded."""
        return score_samples(samples, items, self.fov, given_views)


def score_samples(samples: list[Tensor], items: list[dict], fov: float, given_views: int = 0,
                  ) -> dict[str, float]:  # fmt: skip
    if len(samples) != len(items):
        raise ValueError(f"score needs one generated sample per item; got {len(samples)} and {len(items)}")
    totals: dict[str, list[float]] = {}
    for s, it in zip(samples, items, strict=True):
        scene = Scene.from_dict(json.loads(it["meta"]["scene"]))
        c = s.shape[1] - CAM
        for k, v in score_views(s[:, :c], scene, cameras_of(s, c), fov, given=given_views).items():
            totals.setdefault(k, []).append(v)
    out = {"adherence": float(np.nanmean(totals.pop("adherence")))}
    out["chance"] = ADHERENCE_CHANCE
    out.update({k: float(np.nanmean(v)) for k, v in totals.items()})
    return out


@DATASETS.register("multiview_folder")
class MultiviewFolder(LuminaDataset):
    """A user's folder of posed views: every directory under ``root`` holding a ``cameras.json``::

        {"fov": 40.0, "caption": "a red box", "label": 3,
         "views": [{"file": "000.png", "c2w": [[r, r, r, x], [r, r, r, y], [r, r, r, z], [0, 0, 0, 1]]}, ...]}

    ``c2w`` is the camera-to-world matrix of the view (OpenGL axes: the camera looks along its -z). ``caption``
    and ``label`` are optional. A scene with a missing view file, views of different sizes, a camera that is
    not a rigid transform or fewer than ``views`` views is skipped and counted (``summary()``); the next
    readable scene is returned instead.

    Args:
        root: the folder; size: resize every view to ``size x size`` (None: keep the files' size);
        views: use the first ``views`` views of each scene (None: all); condition: "text", "class" or "none";
        val_fraction: every ``1/val_fraction``-th scene (in sorted order) is held out for the val split.
    """

    modality = "multiview"

    def __init__(self, root: str, size: int | None = None, views: int | None = None, condition: str = "text",
                 val_fraction: float = 0.0, split: str = "train") -> None:  # fmt: skip
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"multiview folder {self.root} does not exist (expected scene folders with cameras.json)"
            )
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        scenes = sorted(p.parent for p in self.root.rglob("cameras.json"))
        if not scenes:
            raise FileNotFoundError(
                f"no scene under {self.root}: each scene is a folder with its views and a cameras.json "
                '({"views": [{"file": ..., "c2w": 4x4}, ...]})'
            )
        if val_fraction:
            k = max(2, round(1 / val_fraction))
            scenes = [s for i, s in enumerate(scenes) if (i % k == k - 1) == (split != "train")]
        self.scenes, self.size, self.views, self.condition = scenes, size, views, condition
        self.condition_kind, self.split = condition, split
        self.stats = SkipStats()

    def __len__(self) -> int:
        return len(self.scenes)

    def item_name(self, index: int) -> str:
        return str(self.scenes[index].relative_to(self.root))

    def read(self, index: int) -> dict[str, Any]:
        """Scene ``index`` as an item; raises :class:`CorruptSampleError` saying what is wrong."""
        folder = self.scenes[index]
        name = self.item_name(index)
        try:
            spec = (folder / "cameras.json").read_bytes()
        except OSError as err:
            raise CorruptSampleError(f"unreadable cameras.json ({type(err).__name__}: {err})", name) from err

        def view_bytes(file: str) -> bytes | None:
            path = folder / file
            return path.read_bytes() if file and path.is_file() else None

        return decode_scene(spec, view_bytes, name, self.size, self.views, self.condition)

    @classmethod
    def list_samples(cls, root: str, missing_caption: str = "empty") -> list:
        """Every scene under ``root`` for ``lumina data pack --modality multiview`` (``multiview_shards`` reads
        the shards back); see :func:`.listing.scene_samples`."""
        from .listing import scene_samples

        return scene_samples(root)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        for k in range(n):
            i = (int(index) + k) % n
            try:
                item = self.read(i)
            except CorruptSampleError as err:
                self.stats.skip(self.item_name(i), err)
                continue
            self.stats.ok()
            return item
        raise CorruptSampleError(
            f"none of the {n} scenes under {self.root} could be read ({self.stats.summary()})"
        )

    @property
    def skipped(self) -> int:
        return self.stats.skipped

    def summary(self) -> str:
        return self.stats.summary()


def decode_scene(spec_bytes: bytes, view_bytes: Any, name: str, size: int | None = None,
                 views: int | None = None, condition: str = "text") -> dict[str, Any]:  # fmt: skip
    """One scene as an item, from its ``cameras.json`` bytes and ``view_bytes(file) -> bytes | None`` (None:
    missing); raises :class:`CorruptSampleError` naming ``name`` and what is wrong (unreadable cameras file,
    too few views, a missing or unreadable view, views of different sizes, a camera that is not rigid)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        spec = json.loads(spec_bytes)
        entries = list(spec["views"])
        fov = float(spec.get("fov", 40.0))
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptSampleError(f"unreadable cameras.json ({type(err).__name__}: {err})", name) from err
    if views is not None:
        if len(entries) < views:
            raise CorruptSampleError(f"has {len(entries)} views; {views} are needed", name)
        entries = entries[:views]
    if not entries:
        raise CorruptSampleError("cameras.json lists no views", name)
    images, mats, sizes = [], [], set()
    for e in entries:
        data = view_bytes(str(e.get("file", "")))
        if data is None:
            raise CorruptSampleError(f"view file {e.get('file')!r} listed in cameras.json is missing", name)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert("RGB")
                sizes.add(im.size)
                images.append(np.asarray(im, dtype=np.float32) / 127.5 - 1)
        except (OSError, UnidentifiedImageError) as err:
            raise CorruptSampleError(
                f"view file {e.get('file')!r} is not a readable picture ({err})", name
            ) from err
        mats.append(e.get("c2w"))
    if len(sizes) != 1:
        raise CorruptSampleError(
            f"views of different sizes {sorted(sizes)}; all views must be the same size", name
        )
    try:
        c2w = torch.tensor(mats, dtype=torch.float64)
        check_rigid(c2w)
    except (ValueError, TypeError, RuntimeError) as err:
        raise CorruptSampleError(str(err), name) from err
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # (V, 3, H, W)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    caption = str(spec.get("caption", ""))
    cond = {"text": caption, "class": spec.get("label"), "none": None}[condition]
    meta = {"name": name, "fov": fov, "caption": caption}
    return {"sample": attach_cameras(x.clamp(-1, 1), c2w), "condition": cond, "meta": meta}


def write_scene_folder(dataset: MultiviewScenes, index: int, folder: str | Path) -> Path:
    """Write procedural scene ``index`` as a user folder scene (PNG views + cameras.json); returns the folder."""
    from PIL import Image

    item = dataset[index]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = item["sample"]
    c2w = cameras_of(x, 3)
    views = []
    for v in range(x.shape[0]):
        arr = ((x[v, :3].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(folder / f"{v:03d}.png")
        views.append(
            {"file": f"{v:03d}.png", "c2w": [[round(float(a), 7) for a in row] for row in c2w[v].tolist()]}
        )
    spec = {"fov": dataset.fov, "caption": item["meta"]["caption"], "views": views}
    (folder / "cameras.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder

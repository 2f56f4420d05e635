"""A user's own image + caption pairs: a folder (``cat.png`` + ``cat.txt``) or webdataset shards packed from
such a folder by ``lumina data pack``.

Images are converted to RGB (or L), resized so they cover the target size (bicubic, antialiased) and
centre-cropped, then mapped to [-1, 1]. With ``buckets=True`` each folder image goes to the equal-area
bucket of nearest aspect ratio instead of a square (see :mod:`.buckets`); :meth:`ImageFolderDataset.sizes`
gives the per-item sizes an :class:`~.buckets.AspectRatioBucketSampler` groups by.

An unreadable image raises :class:`lumina_core.data.robust.CorruptSampleError` naming the file; the core's one
skip-and-count policy, applied when :func:`lumina_core.data.build_dataset` builds a dataset
(:class:`lumina_core.data.robust.SkipCorrupt`), replaces it by the next readable item so batches keep their size,
logs the skip once with the file's name and reports it (``skipped`` / ``skipped_names`` / ``summary()``).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.data import ConditionParameter, LuminaDataset, check_condition
from lumina_core.data.robust import CorruptSampleError, corrupt_on
from lumina_core.data.stream import ShardStream
from lumina_core.registry import DATASETS

from .buckets import bucket_sizes, nearest_bucket

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
#: what a broken file raises inside PIL / numpy
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)
SPLITS = ("train", "val", "test")


def decode_image(data: bytes | str | Path, size: tuple[int, int], channels: int = 3) -> Tensor:
    """Decode an image (file path or encoded bytes) to (channels, H, W) in [-1, 1]: resize to cover, crop.

    Every mode PIL reads is mapped by its real range: 8-bit grey/RGB by 255, 16-bit grey (``I;16``, or
    ``I`` from a 16-bit PNG) by 65535, float (``F``) as [0, 1]; palette and CMYK images are converted to
    RGB; transparency is composited over white (:func:`_flatten`)."""
    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
    with Image.open(src) as img:
        img.load()
        planes = _planes01(img, channels)  # list of single-channel "F" images in [0, 1]
    th, tw = size
    h, w = planes[0].height, planes[0].width
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    top, left = (nh - th) // 2, (nw - tw) // 2
    out = []
    for plane in planes:
        plane = plane.resize((nw, nh), Image.BICUBIC).crop((left, top, left + tw, top + th))
        out.append(np.asarray(plane, dtype=np.float32))
    arr = np.clip(np.stack(out), 0.0, 1.0) * 2.0 - 1.0
    return torch.from_numpy(arr).contiguous()


def _planes01(img, channels: int) -> list:
    """``img`` as ``channels`` single-channel float ("F") images with values in [0, 1]."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            peak = 1.0 if arr.size == 0 or float(np.nanmax(arr)) <= 1.0 else 255.0
        else:  # 16-bit grey (PNG/TIFF); "I" wider than 16 bits is scaled by its own range
            peak = 65535.0 if arr.size == 0 or float(arr.max()) <= 65535 else float(2**32 - 1)
        grey = Image.fromarray((arr / peak).astype(np.float32), mode="F")
        return [grey] * channels if channels == 3 else [grey]
    img = _flatten(img)
    img = img.convert("RGB" if channels == 3 else "L")
    bands = img.split()
    return [Image.fromarray(np.asarray(b, dtype=np.float32) / 255.0, mode="F") for b in bands]


def _flatten(img):
    """Palette, CMYK, grey+alpha and RGBA images to plain RGB or L; transparent pixels become white."""
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "RGBA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return img


def _split_indices(n: int, split: str, val_fraction: float) -> list[int]:
    """Every k-th item (k = round(1 / val_fraction)) is held out for "val"/"test"; 0 keeps all in every split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    if val_fraction == 0:
        return list(range(n))
    k = max(2, round(1 / val_fraction))
    held = [i for i in range(n) if i % k == k - 1]
    return held if split != "train" else [i for i in range(n) if i % k != k - 1]


def _check_pixels(channels: int, condition: str) -> None:
    """The parameters the folder, shard and stream readers share: grey or RGB, captions or nothing."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels}")
    check_condition(condition, ("text", "none"))


def _item(image: Tensor, caption: str, condition: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A dataset item: the caption is the condition when ``condition`` is "text" and ground truth always."""
    return {
        "sample": image,
        "condition": caption if condition == "text" else None,
        "meta": {**meta, "caption": caption},
    }


class _ReadsFiles(LuminaDataset):
    """``__getitem__`` reads item ``i`` with ``_read(i)``; a file that cannot be decoded raises
    :class:`~lumina_core.data.robust.CorruptSampleError` naming it. Skipping and counting is the core's policy,
    applied when :func:`lumina_core.data.build_dataset` builds the dataset (see
    :class:`lumina_core.data.robust.SkipCorrupt`): the unreadable item is replaced by the next readable one."""

    def _read(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def item_name(self, index: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for {n} items of {self!r}")
        with corrupt_on(DECODE_ERRORS, self.item_name(int(index) % n)):
            return self._read(int(index) % n)


@DATASETS.register("image_folder")
class ImageFolderDataset(ConditionParameter, _ReadsFiles):
    """Image files under ``root`` (recursively), each with a caption in the same-named ``.txt`` file.

    Args:
        root: the folder (layout: :func:`lumina_core.data.folder.list_pairs`).
        size: square output side in pixels, or the bucket area side when ``buckets`` is True.
        channels: 3 (RGB) or 1 (grey).
        condition: "text" (the caption) or "none".
        split: "train", "val" or "test"; see ``val_fraction``.
        val_fraction: hold out every ``1/val_fraction``-th file for val/test (0: every split sees all).
        buckets: resize each image to the equal-area bucket of nearest aspect ratio instead of a square.
        multiple: bucket sides are multiples of this (patch size x autoencoder factor).
        max_ratio: the most elongated bucket.
        missing_caption: "error", "empty" (caption "") or "skip" for images without a caption file.
    """

    modality = "image"

    def __init__(
        self,
        root: str,
        size: int = 32,
        channels: int = 3,
        condition: str = "text",
        split: str = "train",
        val_fraction: float = 0.0,
        buckets: bool = False,
        multiple: int = 16,
        max_ratio: float = 4.0,
        missing_caption: str = "error",
    ) -> None:
        from lumina_core.data.folder import list_pairs

        _check_pixels(channels, condition)
        pairs = list_pairs(root, IMAGE_EXTENSIONS, missing_caption=missing_caption)
        self.pairs = [pairs[i] for i in _split_indices(len(pairs), split, val_fraction)]
        if not self.pairs:
            raise ValueError(
                f"image_folder: the {split!r} split of {root} is empty (val_fraction={val_fraction})"
            )
        self.root, self.split = Path(root), split
        self.size, self.channels, self.condition = int(size), channels, condition
        self.buckets = bucket_sizes(self.size, multiple, max_ratio) if buckets else None
        self._sizes: list[tuple[int, int]] | None = None

    @classmethod
    def list_samples(cls, root: str, missing_caption: str = "error") -> list:
        """The folder's samples for ``lumina data pack --modality image`` (image + caption pairs, the layout
        this dataset reads; ``image_shards`` and ``image_stream`` read the shards back)."""
        from lumina_core.data.pack import folder_samples

        return folder_samples(root, IMAGE_EXTENSIONS, missing_caption)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, split={self.split!r}, {len(self)} images)"

    def item_name(self, index: int) -> str:
        return str(self.pairs[index].path)

    def target_size(self, index: int) -> tuple[int, int]:
        """The (H, W) item ``index`` is resized to (reads only the image header when bucketing)."""
        if self.buckets is None:
            return self.size, self.size
        from PIL import Image

        try:
            with Image.open(self.pairs[index].path) as img:
                w, h = img.size
        except DECODE_ERRORS:
            return self.size, self.size  # unreadable: its slot is filled by a readable neighbour anyway
        return nearest_bucket(h, w, self.buckets)

    def sizes(self) -> list[tuple[int, int]]:
        """Per-item (H, W), for :class:`~.buckets.AspectRatioBucketSampler`."""
        if self._sizes is None:
            self._sizes = [self.target_size(i) for i in range(len(self))]
        return self._sizes

    def _read(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        image = decode_image(pair.path, self.target_size(index), self.channels)
        return _item(image, pair.caption(), self.condition, {"path": str(pair.path)})


def decode_image_sample(
    sample: dict[str, Any], size: int = 32, channels: int = 3, condition: str = "text"
) -> dict[str, Any]:
    """A raw webdataset sample (bytes by extension, as packed by ``lumina data pack``) -> dataset item.

    This is the decode function for :class:`lumina_core.data.shards.ShardDataset` (streaming reads).
    """
    from lumina_core.data.shards import sample_caption, sample_data

    _, data = sample_data(sample, IMAGE_EXTENSIONS)
    try:
        image = decode_image(data, (size, size), channels)
    except DECODE_ERRORS as err:
        raise CorruptSampleError(f"cannot decode image: {err}", name=str(sample.get("__key__"))) from err
    return _item(image, sample_caption(sample), condition, {"key": sample.get("__key__")})


def _decoder(size: int, channels: int, condition: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """:func:`decode_image_sample` with a dataset's settings: the one decoding of ``image_shards`` (indexed and
    streamed) and ``image_stream``."""
    return functools.partial(decode_image_sample, size=size, channels=channels, condition=condition)


@DATASETS.register("image_shards")
class ImageShardsDataset(ConditionParameter, _ReadsFiles):
    """Image + caption pairs from local webdataset ``.tar`` shards (as written by ``lumina data pack``).

    Map-style, so the trainer's seeded, resumable sampler can index it: the shards are indexed once (the
    tar member names of each sample's image and caption) and items are read by index. For streaming
    very large shard sets, :meth:`stream` returns a :class:`lumina_core.data.shards.ShardDataset` with the
    same decoding.

    Args:
        path: shard paths (a file, a folder of ``*.tar``, a glob or a brace pattern).
        size, channels, condition, split, val_fraction: as for ``image_folder``.
    """

    modality = "image"

    def __init__(
        self,
        path: str,
        size: int = 32,
        channels: int = 3,
        condition: str = "text",
        split: str = "train",
        val_fraction: float = 0.0,
    ) -> None:
        from lumina_core.data.shards import IndexedShards

        _check_pixels(channels, condition)
        self.index = IndexedShards(path, where=lambda members: any(e in IMAGE_EXTENSIONS for e in members))
        self.urls = self.index.urls
        if not len(self.index):
            raise ValueError(f"image_shards: no image samples in {self.urls}")
        self.entries = _split_indices(len(self.index), split, val_fraction)  # positions in self.index
        self.size, self.channels, self.condition, self.split = int(size), channels, condition, split

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"ImageShardsDataset({len(self.urls)} shards, split={self.split!r}, {len(self)} images)"

    def item_name(self, index: int) -> str:
        return self.index.name(self.entries[index])

    def _read(self, index: int) -> dict[str, Any]:
        sample = self.index.read(self.entries[index])
        return decode_image_sample(sample, self.size, self.channels, self.condition)

    def stream(self, **kwargs: Any):
        """The same shards as a streaming ``ShardDataset`` (kwargs: shuffle_shards, shuffle_buffer, seed)."""
        from lumina_core.data.shards import ShardDataset

        return ShardDataset(self.urls, _decoder(self.size, self.channels, self.condition), **kwargs)


@DATASETS.register("image_stream")
class ImageStreamDataset(ConditionParameter, ShardStream):
    """Image + caption pairs streamed from webdataset shards, for sets too large to index: local files, or
    URLs and ``pipe:`` commands (``"pipe:aws s3 cp s3://bucket/train-{000000..000999}.tar -"``).

    Decoded by :func:`decode_image_sample`, like ``image_shards``. Training streams epoch after epoch,
    shuffled, split among DataLoader workers and distributed ranks, optionally resampled; the val split is
    one unshuffled pass. See :class:`lumina_core.data.stream.ShardStream`.

    Args:
        urls: the shards.
        size, channels, condition: as for ``image_folder``.
        split, resampled, epoch_length, shuffle_buffer, shuffle_shards, seed: as for ``ShardStream``.
    """

    modality = "image"

    def __init__(
        self,
        urls: str | list[str],
        size: int = 32,
        channels: int = 3,
        condition: str = "text",
        split: str = "train",
        resampled: bool = False,
        epoch_length: int | None = None,
        shuffle_buffer: int = 1000,
        shuffle_shards: bool = True,
        seed: int = 0,
    ) -> None:
        _check_pixels(channels, condition)
        self.size, self.channels, self.condition = int(size), channels, condition
        decode = _decoder(self.size, channels, condition)
        super().__init__(urls, decode, split, resampled, epoch_length, shuffle_buffer, shuffle_shards, seed)

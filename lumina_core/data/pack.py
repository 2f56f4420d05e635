"""Packing a user's folder into webdataset shards (``lumina data pack``), with a manifest.

Packing copies bytes, it decodes nothing. What a folder's samples are is the modality's business, so the
listing is an extension point of the dataset contract: a registered dataset class with the plugin's
``modality`` may define

    @classmethod
    def list_samples(cls, root: str, missing_caption: str | None = None) -> list[PackSample]

returning every sample of a folder laid out the way that dataset reads it: a shard key and the sample's
members (``{extension: file path or bytes}``). ``lumina data pack SRC DST --modality NAME`` finds that
method (:func:`pack_lister`) and writes what it returns; without ``--modality`` the generic layout is
packed, ``FILE.<ext>`` + ``FILE.txt`` pairs (:func:`folder_samples`).

Member names follow webdataset: the key is the path up to the first dot of the file name, the rest is the
extension (``"scene_0/007.png"`` is key ``scene_0/007`` ... so keys carry no dots, see :func:`shard_key`);
several data files of one sample are extensions such as ``"000.png"``, ``"001.png"``. In the FILE + FILE.txt
layout a sample holds the data file under its lower-case extension (``png``, ``wav``, ``ply``...), the
caption under ``txt`` (``b""`` when a caption is missing and ``missing_caption="empty"``), the side files
``json`` / ``cls`` when present, and the original relative file path under ``path``.

Every pack writes ``manifest.json`` beside the shards: the modality, the source folder, per shard its
file name, sample count, size and SHA-256, and in all the samples, bytes, members by extension and the files
without a caption (``missing_captions``: those packed with the empty caption plus those left out, counted
apart as ``packed_without_caption`` and ``skipped_without_caption``; their keys in ``missing_caption_keys``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumina_core.data.folder import FolderPair, list_pairs

logger = logging.getLogger("lumina.data")

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PackSample:
    """One sample to pack.

    Attributes:
        key: the sample key (a relative path without extension; dots in its last part are replaced, see
            :func:`shard_key`).
        members: ``{extension: Path or bytes}``, e.g. ``{"png": Path, "txt": Path, "path": b"a/b.png"}``.
        missing_caption: packed with an empty caption (counted in the manifest).
    """

    key: str
    members: dict[str, Path | bytes]
    missing_caption: bool = False

    def read(self) -> dict[str, bytes]:
        """The members as bytes (files are read now)."""
        return {ext: m if isinstance(m, bytes) else Path(m).read_bytes() for ext, m in self.members.items()}


@dataclass
class PackReport:
    """What :func:`pack_samples` wrote (also in ``manifest.json``)."""

    shards: list[Path]
    num_samples: int
    num_bytes: int
    missing_captions: list[str] = field(default_factory=list)
    manifest: Path | None = None
    skipped_without_caption: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"packed {self.num_samples} samples into {len(self.shards)} shard(s), {self.num_bytes / 1e6:.1f} MB"
        if self.shards:
            text += f" ({self.shards[0]} ...)" if len(self.shards) > 1 else f" ({self.shards[0]})"
        if self.missing_captions:
            text += f"; {len(self.missing_captions)} packed without caption (the empty caption)"
        if self.skipped_without_caption:
            text += f"; {len(self.skipped_without_caption)} left out for want of a caption"
        return text


def shard_key(relative_stem: str) -> str:
    """webdataset-safe sample key: no dots in the last path component."""
    head, _, name = relative_stem.rpartition("/")
    name = name.replace(".", "_")
    return f"{head}/{name}" if head else name


# -- listing -------------------------------------------------------------------------------------------------
def pair_sample(pair: FolderPair, root: str | os.PathLike) -> PackSample:
    """A ``FILE.<ext>`` + ``FILE.txt`` pair (with its side files) as a :class:`PackSample`."""
    members: dict[str, Path | bytes] = {
        pair.ext: pair.path,
        "txt": b"" if pair.caption_path is None else pair.caption().encode("utf-8"),
        "path": pair.path.relative_to(root).as_posix().encode("utf-8"),
    }
    members.update(pair.extras)
    return PackSample(shard_key(pair.key), members, pair.caption_path is None)


class SampleList(list):
    """A lister's samples (a list of :class:`PackSample`) plus ``skipped_without_caption``: the keys of the
    files left out because they had no caption (``missing_caption="skip"``), counted in the manifest. A
    plugin's ``list_samples`` may return a plain list (nothing skipped)."""

    def __init__(self, samples: Iterable[PackSample] = (), skipped_without_caption: Iterable[str] = ()) -> None:
        super().__init__(samples)
        self.skipped_without_caption: list[str] = list(skipped_without_caption)


def folder_samples(
    src: str | os.PathLike,
    extensions: Iterable[str] | str | None = None,
    missing_caption: str = "error",
    recursive: bool = True,
) -> SampleList:
    """The generic layout: ``FILE.<ext>`` + ``FILE.txt`` pairs (see :func:`lumina_core.data.folder.list_pairs`)
    - what a folder dataset's ``list_samples`` returns when its folder is laid out that way."""
    pairs = list_pairs(src, extensions, missing_caption=missing_caption, recursive=recursive)
    packed = {p.path for p in pairs}
    skipped = [shard_key(Path(f).relative_to(src).with_suffix("").as_posix()) for f in pairs.without_caption
               if f not in packed]  # fmt: skip
    return SampleList((pair_sample(p, src) for p in pairs), skipped)


def pack_lister(modality: str) -> Callable[..., list[PackSample]]:
    """The ``list_samples`` of the folder dataset of ``modality`` (loading the plugin); ValueError when the
    modality has none, naming its datasets and how a plugin adds one."""
    from lumina_core.registry import DATASETS, MODALITIES

    MODALITIES.get(modality)  # unknown names fail here with suggestions; loads the plugin and its datasets
    mine = [(name, cls) for name, cls in DATASETS.items() if getattr(cls, "modality", None) == modality]
    listers = [(name, cls) for name, cls in mine if callable(getattr(cls, "list_samples", None))]
    if not listers:
        names = ", ".join(sorted(n for n, _ in mine)) or "none"
        raise ValueError(
            f"modality {modality!r} has no folder dataset that lists samples for packing (its datasets: {names}); "
            "a plugin adds one by giving its folder dataset a classmethod list_samples(root, missing_caption) "
            "returning lumina_core.data.pack.PackSample items (see docs/data.md)"
        )
    return listers[0][1].list_samples


# -- writing -------------------------------------------------------------------------------------------------
def _pattern(dst_pattern: str | os.PathLike) -> str:
    dst = os.fspath(dst_pattern)
    if "%" not in dst and not dst.endswith(".tar"):
        dst = os.path.join(dst, "shard-%06d.tar")  # a folder
    try:
        dst % 0
    except TypeError as err:
        raise ValueError(
            f"dst_pattern needs one integer field such as 'out/shard-%06d.tar' (or give a folder); got {dst!r}"
        ) from err
    return dst


def _existing(pattern: str) -> list[Path]:
    folder = Path(pattern % 0).parent
    if not folder.is_dir():
        return []
    found = [folder / MANIFEST] if (folder / MANIFEST).is_file() else []
    n = 0
    while Path(pattern % n).exists():
        found.append(Path(pattern % n))
        n += 1
    return found


def pack_samples(
    samples: Sequence[PackSample],
    dst_pattern: str | os.PathLike,
    shard_size: int = 1000,
    max_shard_bytes: float = 1e9,
    overwrite: bool = False,
    source: str | os.PathLike | None = None,
    modality: str | None = None,
) -> PackReport:
    """Write ``samples`` into tar shards with ``webdataset.ShardWriter``, and ``manifest.json`` beside them.

    Args:
        samples: what to pack (keys must be unique).
        dst_pattern: a printf pattern for shard paths, e.g. ``"out/shard-%06d.tar"``, or a folder (then
            ``<folder>/shard-%06d.tar``); parent folders are created.
        shard_size: at most this many samples per shard.
        max_shard_bytes: start a new shard past this size.
        overwrite: replace shards and a manifest already there (otherwise that is an error: a smaller
            second pack would leave stale shards that readers of the folder would read too).
        source, modality: recorded in the manifest.
    """
    import webdataset as wds

    from lumina_core.data.tar_index import scan_tar

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1; got {shard_size}")
    pattern = _pattern(dst_pattern)
    if not samples:
        raise ValueError(f"nothing to pack{f' in {source}' if source else ''}")
    seen: dict[str, str] = {}
    for s in samples:
        if s.key in seen:
            raise ValueError(f"two samples map to the shard key {s.key!r} ({seen[s.key]}); rename one")
        seen[s.key] = str(next(iter(s.members.values()), s.key))
    old = _existing(pattern)
    if old and not overwrite:
        raise FileExistsError(
            f"{Path(pattern % 0).parent} already holds packed shards ({', '.join(p.name for p in old[:3])}"
            f"{', ...' if len(old) > 3 else ''}); choose another destination or pass --overwrite (they are replaced)"
        )
    for path in old:
        path.unlink()

    Path(pattern % 0).parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    total = 0
    members: Counter[str] = Counter()
    with wds.ShardWriter(
        pattern, maxcount=shard_size, maxsize=max_shard_bytes, verbose=0, post=lambda f: written.append(Path(f))
    ) as sink:
        for s in samples:
            data = s.read()
            total += sum(len(v) for v in data.values())
            members.update(data.keys())
            sink.write({"__key__": s.key, **data})
    missing = [s.key for s in samples if s.missing_caption]
    skipped = list(getattr(samples, "skipped_without_caption", ()))
    manifest_path = Path(pattern % 0).parent / MANIFEST
    report = PackReport(written, len(samples), total, missing, manifest_path, skipped)
    shards = []
    for shard in written:
        digest = hashlib.sha256()
        with open(shard, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        shards.append(
            {
                "file": shard.name,
                "samples": len(scan_tar(str(shard))[1]),
                "bytes": shard.stat().st_size,
                "sha256": digest.hexdigest(),
            }
        )
    manifest: dict[str, Any] = {
        "format": "webdataset",
        "modality": modality,
        "source": None if source is None else str(Path(source).resolve()),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "num_samples": len(samples),
        "num_bytes": total,
        "members": dict(sorted(members.items())),
        "missing_captions": len(missing) + len(skipped),
        "missing_caption_keys": (missing + skipped)[:100],
        "packed_without_caption": len(missing),
        "skipped_without_caption": len(skipped),
        "shards": shards,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("%s", report)
    return report


def pack_folder(
    src: str | os.PathLike,
    dst_pattern: str | os.PathLike,
    shard_size: int = 1000,
    extensions: Iterable[str] | str | None = None,
    missing_caption: str | None = None,
    max_shard_bytes: float = 1e9,
    recursive: bool = True,
    modality: str | None = None,
    overwrite: bool = False,
) -> PackReport:
    """Pack a folder: laid out as ``modality``'s folder dataset reads it (its ``list_samples``), or, with no
    modality, as ``FILE.<ext>`` + ``FILE.txt`` pairs.

    Args:
        src: the folder.
        dst_pattern, shard_size, max_shard_bytes, overwrite: see :func:`pack_samples`.
        extensions: data file extensions of the generic layout (default: common image, audio and
            point-cloud formats); not used with a modality.
        missing_caption: ``"error"``, ``"empty"`` (pack ``""``) or ``"skip"``; None: the modality's
            default (``"error"`` for the generic layout).
        modality: a registered modality whose folder dataset lists the samples.
    """
    if not Path(src).is_dir():
        raise FileNotFoundError(f"data folder {src} does not exist (or is not a folder)")
    if modality is None:
        samples = folder_samples(src, extensions, missing_caption or "error", recursive)
    else:
        if extensions is not None:
            raise ValueError("extensions apply to the generic layout; a modality's folder dataset chooses its own")
        lister = pack_lister(modality)
        kwargs = {} if missing_caption is None else {"missing_caption": missing_caption}
        samples = lister(str(src), **kwargs)
    return pack_samples(samples, dst_pattern, shard_size, max_shard_bytes, overwrite, source=src, modality=modality)

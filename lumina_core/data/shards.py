"""webdataset shards: pack a folder of ``FILE.<ext>`` + ``FILE.txt`` pairs, and stream them back.

Packing (:func:`pack_folder`) copies bytes, it decodes nothing: each sample of a shard holds the data file
under its lower-case extension (``png``, ``wav``, ``ply``...), the caption under ``txt`` (``b""`` when a
caption is missing and ``missing_caption="empty"``), the side files ``json`` / ``cls`` when present, and the
original relative file path under ``path``. Sample keys are the relative paths without extension, with dots
in the file name replaced by ``_`` (webdataset splits key and extension at the first dot).

Reading (:class:`ShardDataset`) is local-only and goes through webdataset's tar reader. Every sample is read
exactly once per epoch across all consumers (``DataLoader`` workers x distributed ranks): shards are dealt
round-robin to consumers when there are at least as many shards as consumers, otherwise every consumer reads
every shard and keeps every ``n``-th sample. A sample whose ``decode`` raises is skipped and counted
(see :mod:`lumina_core.data.robust`); a shard that cannot be read past some point is logged and counted in
``failed_shards``.

Random access (:class:`IndexedShards`) scans the shards' tar headers once and reads any sample by index, for
map-style datasets (seeded resumable samplers, ``val[i]`` in evaluation).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumina_core.data.folder import list_pairs
from lumina_core.data.robust import CorruptSampleError, SkipCorruptIterable

logger = logging.getLogger("lumina.data")

#: Keys of a packed sample that are not the data file.
META_KEYS = ("txt", "json", "cls", "path")


# -- packing ---------------------------------------------------------------------------------------------
@dataclass
class PackReport:
    """What :func:`pack_folder` wrote."""

    shards: list[Path]
    num_samples: int
    num_bytes: int
    missing_captions: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"packed {self.num_samples} samples into {len(self.shards)} shard(s), {self.num_bytes / 1e6:.1f} MB"
        if self.shards:
            text += f" ({self.shards[0]} ...)" if len(self.shards) > 1 else f" ({self.shards[0]})"
        if self.missing_captions:
            text += f"; {len(self.missing_captions)} without caption"
        return text


def shard_key(relative_stem: str) -> str:
    """webdataset-safe sample key: no dots in the last path component."""
    head, _, name = relative_stem.rpartition("/")
    name = name.replace(".", "_")
    return f"{head}/{name}" if head else name


def pack_folder(
    src: str | os.PathLike,
    dst_pattern: str | os.PathLike,
    shard_size: int = 1000,
    extensions: Iterable[str] | str | None = None,
    missing_caption: str = "error",
    max_shard_bytes: float = 1e9,
    recursive: bool = True,
) -> PackReport:
    """Pack a folder of data + caption pairs into tar shards with ``webdataset.ShardWriter``.

    Args:
        src: the folder (see :func:`lumina_core.data.folder.list_pairs` for the layout).
        dst_pattern: a printf pattern for shard paths, e.g. ``"out/shard-%06d.tar"``, or a folder (then
            ``<folder>/shard-%06d.tar``); parent folders are created.
        shard_size: at most this many samples per shard.
        extensions: data file extensions (default: common image, audio and point-cloud formats).
        missing_caption: ``"error"`` (default), ``"empty"`` (pack ``""``) or ``"skip"``.
        max_shard_bytes: start a new shard past this size.
    """
    import webdataset as wds

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1; got {shard_size}")
    dst_pattern = os.fspath(dst_pattern)
    if "%" not in dst_pattern and not dst_pattern.endswith(".tar"):
        dst_pattern = os.path.join(dst_pattern, "shard-%06d.tar")  # a folder
    try:
        dst_pattern % 0
    except TypeError as err:
        raise ValueError(
            f"dst_pattern needs one integer field such as 'out/shard-%06d.tar' (or give a folder); got {dst_pattern!r}"
        ) from err
    pairs = list_pairs(src, extensions, missing_caption=missing_caption, recursive=recursive)
    keys: dict[str, str] = {}
    for pair in pairs:
        key = shard_key(pair.key)
        if key in keys:
            raise ValueError(
                f"files {keys[key]} and {pair.path} map to the same shard key {key!r}; rename one"
            )
        keys[key] = str(pair.path)

    Path(dst_pattern % 0).parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    root = Path(src)
    total = 0
    with wds.ShardWriter(
        dst_pattern,
        maxcount=shard_size,
        maxsize=max_shard_bytes,
        verbose=0,
        post=lambda f: written.append(Path(f)),
    ) as sink:
        for pair in pairs:
            sample: dict[str, Any] = {
                "__key__": shard_key(pair.key),
                pair.ext: pair.path.read_bytes(),
                "txt": b"" if pair.caption_path is None else pair.caption().encode("utf-8"),
                "path": pair.path.relative_to(root).as_posix().encode("utf-8"),
            }
            for ext, path in pair.extras.items():
                sample[ext] = path.read_bytes()
            total += sum(len(v) for k, v in sample.items() if not k.startswith("__"))
            sink.write(sample)
    missing = [p.key for p in pairs if p.caption_path is None]
    report = PackReport(written, len(pairs), total, missing)
    logger.info("%s", report)
    return report


# -- reading ---------------------------------------------------------------------------------------------
def resolve_shards(urls: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Local shard paths from a brace pattern (``shard-{000000..000009}.tar``), a glob, a folder, or a list."""
    if isinstance(urls, (str, os.PathLike)):
        urls = [urls]
    out: list[str] = []
    for url in urls:
        text = os.fspath(url)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) or text.startswith("pipe:"):
            raise ValueError(f"shards must be local files (nothing is downloaded here); got {text!r}")
        expanded = _brace_expand(text)
        for item in expanded:
            if os.path.isdir(item):
                found = sorted(glob.glob(os.path.join(item, "*.tar")))
            elif any(c in item for c in "*?["):
                found = sorted(glob.glob(item))
            else:
                found = [item]
            missing = [f for f in found if not os.path.isfile(f)]
            if missing:
                raise FileNotFoundError(f"shard file(s) not found: {', '.join(missing[:5])}")
            if not found:
                raise FileNotFoundError(f"no shard files match {item!r}")
            out.extend(found)
    if not out:
        raise ValueError("no shard files given")
    return out


def _brace_expand(text: str) -> list[str]:
    if "{" not in text:
        return [text]
    import braceexpand

    return list(braceexpand.braceexpand(text))


def consumer_id() -> tuple[int, int]:
    """``(index, count)`` of this reader among all DataLoader workers of all distributed ranks."""
    import torch.distributed as dist
    from torch.utils.data import get_worker_info

    rank, world = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    info = get_worker_info()
    wid, nworkers = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * nworkers + wid, world * nworkers


class ShardDataset(SkipCorruptIterable):
    """Stream decoded items from local webdataset shards, skipping and counting undecodable samples.

    Args:
        urls: shard paths (see :func:`resolve_shards`).
        decode: ``dict`` of bytes (plus ``"__key__"``, ``"__url__"``) -> item; raise to mark a sample
            unreadable (:class:`~lumina_core.data.robust.CorruptSampleError` or any decode error).
        shuffle_shards: shuffle the shard order each epoch (seeded by ``seed`` and :meth:`set_epoch`).
        shuffle_buffer: if > 0, shuffle samples through a buffer of this size (same seeding).
        seed: base seed for both shuffles.
        errors: exception types counted as unreadable samples.
    """

    def __init__(
        self,
        urls: str | os.PathLike | Sequence[str | os.PathLike],
        decode: Callable[[dict[str, Any]], Any],
        shuffle_shards: bool = False,
        shuffle_buffer: int = 0,
        seed: int = 0,
        errors: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        super().__init__(source=(), decode=decode, errors=errors)
        self.urls = resolve_shards(urls)
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = int(shuffle_buffer)
        self.seed = int(seed)
        self.epoch = 0
        self.failed_shards: list[str] = []

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffling for the next pass (call it each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def my_shards(self) -> tuple[list[str], int, int]:
        """This consumer's shards, and the sample stride/offset (1, 0 when whole shards are dealt)."""
        cid, count = consumer_id()
        urls = list(self.urls)
        if self.shuffle_shards:
            random.Random(self.seed * 1000003 + self.epoch).shuffle(urls)
        if len(urls) >= count:
            return urls[cid::count], 1, 0
        return urls, count, cid

    def raw_samples(self) -> Iterator[dict[str, Any]]:
        """This consumer's raw samples (dicts of bytes) for one pass, before decoding."""
        from webdataset.tariterators import tarfile_samples

        urls, stride, offset = self.my_shards()
        index = 0
        for url in urls:

            def handler(err: Exception, url: str = url) -> bool:
                self.failed_shards.append(url)
                logger.warning("shard %s could not be read to the end (%s: %s)", url, type(err).__name__, err)
                return True  # go on with the next shard

            for sample in tarfile_samples([{"url": url}], handler=handler):
                if index % stride == offset:
                    yield sample
                index += 1

    def __iter__(self) -> Iterator[Any]:
        raws = self.raw_samples()
        if self.shuffle_buffer > 0:
            cid, _ = consumer_id()
            raws = _buffer_shuffle(
                raws, self.shuffle_buffer, random.Random(self.seed * 1000003 + self.epoch * 1009 + cid)
            )
        return self.decode_stream(raws)

    def summary(self) -> str:
        text = super().summary()
        if self.failed_shards:
            text += f"; {len(self.failed_shards)} shard(s) could not be read to the end"
        return text

    def reset(self) -> None:
        super().reset()
        self.failed_shards.clear()


class IndexedShards:
    """Random access (map-style) to the samples of local webdataset ``.tar`` shards.

    The shards are scanned once: tar members are grouped by sample key (webdataset convention: the key is
    the member path up to the first dot of its base name, the rest is the lower-cased extension), in the
    order they appear. ``read(i)`` returns sample ``i`` as ``{ext: bytes, "__key__", "__url__"}``, the same
    dict :class:`ShardDataset` hands to a decode function. Members of uncompressed tars are read by offset
    (one seek per member); compressed tars fall back to ``tarfile`` extraction by name.

    Args:
        urls: shard paths (see :func:`resolve_shards`).
        where: keep only samples whose ``{ext: member name}`` satisfies it (e.g. "has an image").

    A member that cannot be read back (truncated shard, file changed since indexing) raises
    :class:`~lumina_core.data.robust.CorruptSampleError` naming ``"<shard>:<key>"``, so skip-and-count
    wrappers treat it like any other unreadable sample.
    """

    def __init__(
        self,
        urls: str | os.PathLike | Sequence[str | os.PathLike],
        where: Callable[[dict[str, str]], bool] | None = None,
    ) -> None:
        self.urls = resolve_shards(urls)
        self._plain: list[bool] = []
        # one entry per sample: (shard index, key, {ext: (member name, data offset, size)})
        self._entries: list[tuple[int, str, dict[str, tuple[str, int, int]]]] = []
        for u, url in enumerate(self.urls):
            plain, groups = _scan_tar(url)
            self._plain.append(plain)
            for key, members in groups.items():
                if where is None or where({ext: m[0] for ext, m in members.items()}):
                    self._entries.append((u, key, members))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"IndexedShards({len(self.urls)} shards, {len(self)} samples)"

    @property
    def keys(self) -> list[str]:
        """Sample keys, in index order."""
        return [e[1] for e in self._entries]

    def key(self, index: int) -> str:
        return self._entries[index][1]

    def url(self, index: int) -> str:
        """The shard that holds sample ``index``."""
        return self.urls[self._entries[index][0]]

    def members(self, index: int) -> dict[str, str]:
        """``{ext: tar member name}`` of sample ``index``."""
        return {ext: m[0] for ext, m in self._entries[index][2].items()}

    def name(self, index: int) -> str:
        """``"<shard>:<key>"``, for error messages and skip logs."""
        return f"{self.url(index)}:{self.key(index)}"

    def read(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as ``{ext: bytes, "__key__": key, "__url__": shard}``."""
        import tarfile

        n = len(self._entries)
        if not -n <= index < n:
            raise IndexError(f"sample index {index} out of range for {n} samples")
        u, key, members = self._entries[index]
        url = self.urls[u]
        sample: dict[str, Any] = {}
        try:
            if self._plain[u]:
                with open(url, "rb") as f:
                    for ext, (member, offset, size) in members.items():
                        f.seek(offset)
                        data = f.read(size)
                        if len(data) != size:
                            raise EOFError(f"member {member!r} is truncated ({len(data)} of {size} bytes)")
                        sample[ext] = data
            else:
                with tarfile.open(url) as tar:
                    for ext, (member, _, _) in members.items():
                        sample[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
        except (OSError, EOFError, KeyError, tarfile.TarError) as err:
            raise CorruptSampleError(f"cannot read from shard: {err}", name=f"{url}:{key}") from err
        sample["__key__"], sample["__url__"] = key, url
        return sample


def _scan_tar(url: str) -> tuple[bool, dict[str, dict[str, tuple[str, int, int]]]]:
    """(is an uncompressed tar, {key: {ext: (member name, data offset, size)}}) in member order."""
    import tarfile

    groups: dict[str, dict[str, tuple[str, int, int]]] = {}
    try:
        plain = not _compressed(url)
        with tarfile.open(url) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                head, _, base = m.name.rpartition("/")
                key, dot, ext = base.partition(".")
                if not (key and dot and ext):
                    continue  # not a "<key>.<ext>" member: webdataset skips these too
                groups.setdefault(f"{head}/{key}" if head else key, {})[ext.lower()] = (
                    m.name,
                    m.offset_data,
                    m.size,
                )
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(
            f"cannot index shard {url} (expected a tar file): {type(err).__name__}: {err}"
        ) from err
    return plain, groups


def _compressed(url: str) -> bool:
    with open(url, "rb") as f:
        magic = f.read(6)
    return magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00"


def _buffer_shuffle(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


# -- helpers for decode functions ------------------------------------------------------------------------
def sample_caption(sample: dict[str, Any]) -> str:
    """The UTF-8 caption of a raw sample (``""`` when packed with an empty caption)."""
    if "txt" not in sample:
        raise CorruptSampleError("sample has no 'txt' caption", name=str(sample.get("__key__")))
    try:
        return bytes(sample["txt"]).decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise CorruptSampleError(f"caption is not UTF-8: {err}", name=str(sample.get("__key__"))) from err


def sample_meta(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample's JSON metadata (``{}`` when absent)."""
    if "json" not in sample:
        return {}
    try:
        meta = json.loads(bytes(sample["json"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptSampleError(
            f"metadata is not valid JSON: {err}", name=str(sample.get("__key__"))
        ) from err
    if not isinstance(meta, dict):
        raise CorruptSampleError("metadata JSON must be an object", name=str(sample.get("__key__")))
    return meta


def sample_label(sample: dict[str, Any]) -> int | None:
    """The integer label from ``cls`` (None when absent)."""
    if "cls" not in sample:
        return None
    text = bytes(sample["cls"]).decode("utf-8", errors="replace").strip()
    try:
        return int(text)
    except ValueError as err:
        raise CorruptSampleError(
            f"label {text!r} is not an integer", name=str(sample.get("__key__"))
        ) from err


def sample_data(sample: dict[str, Any], extensions: Iterable[str] | None = None) -> tuple[str, bytes]:
    """``(extension, bytes)`` of the sample's one data file (optionally restricted to ``extensions``)."""
    allowed = None if extensions is None else {e.lower().lstrip(".") for e in extensions}
    found = [
        k
        for k in sample
        if not k.startswith("__") and k not in META_KEYS and (allowed is None or k in allowed)
    ]
    if len(found) != 1:
        raise CorruptSampleError(
            f"expected one data file{'' if allowed is None else f' with extension in {sorted(allowed)}'}; "
            f"found {found or 'none'}",
            name=str(sample.get("__key__")),
        )
    return found[0], bytes(sample[found[0]])

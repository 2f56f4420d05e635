"""webdataset shards: stream them (:class:`ShardDataset`) or read them by index (:class:`IndexedShards`).

Packing a folder into shards is :mod:`lumina_core.data.pack` (``pack_folder`` is still importable from here).

Streaming (:class:`ShardDataset`) goes through webdataset's tar reader, so local files, URLs and ``pipe:``
commands all work. Without resampling every sample is read exactly once per epoch across all consumers
(``DataLoader`` workers x distributed ranks): shards are dealt round-robin to consumers when there are at
least as many shards as consumers, otherwise every consumer reads every shard and keeps every ``n``-th
sample; with resampling each consumer draws shards with replacement. A sample whose ``decode`` raises is
skipped and counted (see :mod:`lumina_core.data.robust`); a shard that cannot be read past some point is
logged and counted in ``failed_shards``. Streamed items carry their position, so a run resumes exactly
(:mod:`lumina_core.data.stream`).

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
from typing import Any

from lumina_core.data.pack import PackReport, PackSample, pack_folder, pack_samples, shard_key  # noqa: F401
from lumina_core.data.robust import CorruptSampleError, PassTally, SkipCorruptIterable
from lumina_core.data.tar_index import scan_tar

logger = logging.getLogger("lumina.data")

#: Keys of a packed sample that are not the data file.
META_KEYS = ("txt", "json", "cls", "path")


# -- reading ---------------------------------------------------------------------------------------------
#: URL schemes a stream opens through webdataset's ``gopen`` besides local paths: ``pipe:CMD`` reads CMD's
#: standard output (``pipe:aws s3 cp s3://bucket/shard-000000.tar -`` for object stores), ``file://``, and
#: the schemes webdataset hands to command-line tools (curl for HTTP(S)/SFTP/FTPS/SCP, gsutil for ``gs://``).
REMOTE_SCHEMES = ("pipe", "file", "http", "https", "gs", "ais", "sftp", "ftps", "scp", "hf", "htgs")


def url_scheme(text: str) -> str | None:
    """``"pipe"``, ``"https"``, ... for a URL; None for a local path."""
    if text.startswith("pipe:"):
        return "pipe"
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    return match.group(1).lower() if match else None


def resolve_shards(urls: str | os.PathLike | Sequence[str | os.PathLike], remote: bool = False) -> list[str]:
    """Shard paths from a brace pattern (``shard-{000000..000009}.tar``), a glob, a folder, or a list.

    With ``remote=True`` (streams), URLs and ``pipe:`` commands that webdataset opens are accepted too
    (brace patterns expanded, nothing checked until read; see :data:`REMOTE_SCHEMES`); random access
    (:class:`IndexedShards`) needs local files and refuses them.
    """
    if isinstance(urls, (str, os.PathLike)):
        urls = [urls]
    out: list[str] = []
    for url in urls:
        text = os.fspath(url)
        scheme = url_scheme(text)
        if scheme is not None:
            if not remote:
                raise ValueError(
                    f"random access needs local files (nothing is downloaded here); got {text!r}. A stream opens "
                    "URLs and pipe: commands: use ShardDataset or the modality's *_stream dataset"
                )
            if scheme not in REMOTE_SCHEMES:
                raise ValueError(
                    f"shard URL {text!r}: webdataset does not open {scheme!r} URLs; use a local path, one of "
                    f"{', '.join(s + ':' for s in REMOTE_SCHEMES)}, or a pipe: command that writes the tar to "
                    "its output, e.g. 'pipe:aws s3 cp s3://bucket/shard-000000.tar -'"
                )
            out.extend(_brace_expand(text))
            continue
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


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``: from ``torch.distributed`` when it is initialised, else from the ``RANK`` and
    ``WORLD_SIZE`` variables that ``torchrun`` sets, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError as err:
        raise ValueError(f"RANK / WORLD_SIZE must be integers; got {err}") from err
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a rank of a job")
    return rank, world


def consumer_id() -> tuple[int, int]:
    """``(index, count)`` of this reader among all DataLoader workers of all distributed ranks."""
    from torch.utils.data import get_worker_info

    rank, world = rank_and_world()
    info = get_worker_info()
    wid, nworkers = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * nworkers + wid, world * nworkers


#: ``item["meta"][STREAM_KEY]`` of a streamed item: ``[rank, world, worker, workers, epoch, position, count]``
#: - who read it, in which epoch, at which position of that consumer's (shuffled) raw stream, and how many
#: items that consumer had yielded in the epoch before it. :class:`lumina_core.data.stream.StreamPosition`
#: reads it to save where a stream is.
STREAM_KEY = "_stream"


class ShardDataset(SkipCorruptIterable):
    """Stream decoded items from webdataset shards, skipping and counting undecodable samples.

    The stream of one consumer (one DataLoader worker of one rank; see :func:`consumer_id`) in epoch ``e``:

    * shards: with ``resampled=False`` every shard once per epoch, dealt round-robin to the consumers when
      there are at least as many shards as consumers (otherwise every consumer reads every shard and keeps
      every ``n``-th sample), in an order shuffled per epoch when ``shuffle_shards``; with ``resampled=True``
      shards drawn with replacement, for ever, by a generator seeded with ``(seed, e, consumer)`` - the
      stream for data sets too large to pass over in order, ``epoch_length`` items per epoch;
    * samples pass through a shuffle buffer of ``shuffle_buffer`` samples (seeded the same way), then
      ``decode``; a sample whose decode raises is skipped and counted; a shard that cannot be read to the end
      (truncated, a failing ``pipe:`` command) is logged, counted in ``failed_shards``, and the stream goes on;
    * an epoch ends when the shards are done, or after ``ceil(epoch_length / consumers)`` items.

    ``repeat=True`` runs epoch after epoch for ever (training); ``repeat=False`` runs one epoch per
    ``iter()`` (epoch :attr:`epoch`, see :meth:`set_epoch`). Every yielded item whose ``meta`` is a dict gets
    ``meta[STREAM_KEY]`` (see :data:`STREAM_KEY`), so a trainer can save exactly where each consumer is
    (:class:`lumina_core.data.stream.StreamPosition`); :meth:`load_state_dict` of that state makes the next
    ``iter()`` continue from there: the consumer replays its raw stream up to the saved position without
    decoding (same shards, same shuffles: every shuffle is seeded) and goes on - for resampled streams too.
    It is exact when the shards have not changed and the number of consumers is the same; otherwise each
    consumer restarts at the beginning of the earliest saved epoch, with a warning.

    Args:
        urls: shard paths, patterns or URLs (see :func:`resolve_shards` with ``remote=True``).
        decode: ``dict`` of bytes (plus ``"__key__"``, ``"__url__"``) -> item; raise to mark a sample
            unreadable (:class:`~lumina_core.data.robust.CorruptSampleError` or any decode error).
        shuffle_shards: shuffle the shard order each epoch (``resampled=False``).
        shuffle_buffer: if > 0, shuffle samples through a buffer of this size.
        seed: base seed for the shuffles and the resampling.
        errors: exception types counted as unreadable samples.
        resampled: draw shards with replacement (needs ``epoch_length``).
        epoch_length: items per epoch over all consumers (with ``resampled``; otherwise an optional cap).
        repeat: run epochs back to back for ever.
    """

    def __init__(
        self,
        urls: str | os.PathLike | Sequence[str | os.PathLike],
        decode: Callable[[dict[str, Any]], Any],
        shuffle_shards: bool = False,
        shuffle_buffer: int = 0,
        seed: int = 0,
        errors: tuple[type[BaseException], ...] = (Exception,),
        resampled: bool = False,
        epoch_length: int | None = None,
        repeat: bool = False,
    ) -> None:
        super().__init__(source=(), decode=decode, errors=errors)
        self.urls = resolve_shards(urls, remote=True)
        problems = []
        if int(shuffle_buffer) < 0:
            problems.append(f"shuffle_buffer must be >= 0; got {shuffle_buffer}")
        if epoch_length is not None and int(epoch_length) < 1:
            problems.append(f"epoch_length must be >= 1 or None; got {epoch_length}")
        if resampled and epoch_length is None:
            problems.append(
                "a resampled stream never runs out of shards: give epoch_length (items per epoch, all consumers)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        self.shuffle_shards = bool(shuffle_shards)
        self.shuffle_buffer = int(shuffle_buffer)
        self.seed = int(seed)
        self.resampled = bool(resampled)
        self.epoch_length = None if epoch_length is None else int(epoch_length)
        self.repeat = bool(repeat)
        self.epoch = 0
        self.failed_shards: list[str] = []  # this process's; stats.failed_sources: every worker's
        self.stats.track_sources(self.urls)
        self._resume: dict[str, Any] | None = None

    def __repr__(self) -> str:
        kind = "resampled " if self.resampled else ""
        return f"ShardDataset({kind}{len(self.urls)} shards)"

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffling for the next pass (call it each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    # -- positions ---------------------------------------------------------------------------------------
    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue from ``state`` (:meth:`lumina_core.data.stream.StreamPosition.state_dict`) at the next
        ``iter()``; None starts from the beginning."""
        self._resume = None if state is None else dict(state)

    def _start(self, rank: int, world: int, wid: int, nworkers: int) -> tuple[int, int, int, int]:
        """``(effective worker, epoch, last position, items yielded in that epoch)`` for this consumer."""
        state = self._resume
        if not state or not state.get("positions"):
            return wid, self.epoch, -1, 0
        if int(state.get("world", -1)) != world or int(state.get("workers", -1)) != nworkers:
            epoch = min(int(p[0]) for p in state["positions"].values())
            logger.warning(
                "stream positions were saved with %s rank(s) x %s worker(s), this run has %d x %d: each "
                "reader restarts at the beginning of epoch %d (items of that epoch may repeat)",
                state.get("world"), state.get("workers"), world, nworkers, epoch,
            )  # fmt: skip
            return wid, epoch, -1, 0
        # the DataLoader hands out batches from its workers in turn, starting with worker 0: the worker
        # whose batch came next in the saved run plays worker 0 now, so the interleaving is unchanged
        wid = (wid + int(state.get("next_worker", 0))) % nworkers
        saved = state["positions"].get(str(rank * nworkers + wid))
        if saved is None:  # this consumer had delivered nothing the run used
            return wid, int(state.get("start_epoch", self.epoch)), -1, 0
        return wid, int(saved[0]), int(saved[1]), int(saved[2]) + 1

    # -- raw samples -------------------------------------------------------------------------------------
    def my_shards(
        self, epoch: int | None = None, consumer: tuple[int, int] | None = None
    ) -> tuple[list[str], int, int]:
        """A consumer's shards in ``epoch`` (resampled: all), and the sample stride/offset (1, 0 when whole
        shards are dealt); ``consumer`` is ``(index, count)``, default :func:`consumer_id`."""
        cid, count = consumer_id() if consumer is None else consumer
        urls = list(self.urls)
        if self.resampled:
            return urls, 1, 0
        if self.shuffle_shards:
            random.Random(self.seed * 1000003 + (self.epoch if epoch is None else epoch)).shuffle(urls)
        if len(urls) >= count:
            return urls[cid::count], 1, 0
        return urls, count, cid

    def read_shard(self, url: str) -> Iterator[dict[str, Any]]:
        """The raw samples of one shard (local path or URL), up to where it can be read."""
        from webdataset.tariterators import tarfile_samples

        failed: list[Exception] = []

        def handler(err: Exception) -> bool:
            if not failed:  # webdataset reports one broken tar at two levels: count it once
                failed.append(err)
                self.failed_shards.append(url)
                self.stats.fail_source(url)  # a shared flag: the main process sees the workers' failures
                reason = str(err.args[0] if err.args else err).split(" @ ")[0]
                logger.warning(
                    "shard %s could not be read to the end (%s: %s)", url, type(err).__name__, reason
                )
            return True  # go on with the next shard

        yield from tarfile_samples([{"url": url}], handler=handler)

    def raw_samples(
        self, epoch: int | None = None, consumer: tuple[int, int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """A consumer's raw samples (dicts of bytes) for one epoch, before shuffling and decoding (infinite
        when resampled); ``consumer`` is ``(index, count)``, default :func:`consumer_id`."""
        epoch = self.epoch if epoch is None else epoch
        consumer = consumer_id() if consumer is None else consumer
        if self.resampled:
            cid = consumer[0]
            rng = random.Random(f"resampled/{self.seed}/{epoch}/{cid}")
            while True:
                empty = True
                for _ in range(len(self.urls)):
                    for sample in self.read_shard(rng.choice(self.urls)):
                        empty = False
                        yield sample
                if empty:
                    raise ValueError(
                        f"{len(self.urls)} draws from the shards {self.urls[:3]}... gave no sample: are they "
                        "all empty or unreadable?"
                    )
        urls, stride, offset = self.my_shards(epoch, consumer)
        index = 0
        for url in urls:
            for sample in self.read_shard(url):
                if index % stride == offset:
                    yield sample
                index += 1

    def epoch_samples(self, epoch: int, consumer: tuple[int, int]) -> Iterator[dict[str, Any]]:
        """A consumer's raw samples of ``epoch`` in the order they are decoded (after the shuffle buffer)."""
        raws = self.raw_samples(epoch, consumer)
        if self.shuffle_buffer > 0:
            rng = random.Random(f"buffer/{self.seed}/{epoch}/{consumer[0]}")
            raws = _buffer_shuffle(raws, self.shuffle_buffer, rng)
        return raws

    # -- items -------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        from torch.utils.data import get_worker_info

        rank, world = rank_and_world()
        info = get_worker_info()
        wid, nworkers = (0, 1) if info is None else (info.id, info.num_workers)
        wid, epoch, skip, count = self._start(rank, world, wid, nworkers)
        consumer, consumers = rank * nworkers + wid, world * nworkers
        limit = None if self.epoch_length is None else -(-self.epoch_length // consumers)
        while True:
            tally = PassTally()
            stream = self.epoch_samples(epoch, (consumer, consumers))
            try:
                for pos, raw in enumerate(stream):
                    if pos <= skip:
                        continue  # resuming: replayed, not decoded
                    if limit is not None and count >= limit:
                        break
                    item = self.decode_one(raw, tally)
                    if item is None:
                        continue
                    meta = item.get("meta") if isinstance(item, dict) else None
                    if isinstance(meta, dict):
                        meta[STREAM_KEY] = [rank, world, wid, nworkers, epoch, pos, count]
                    count += 1
                    yield item
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            self.end_pass(tally)
            if not self.repeat:
                return
            if tally.ok == 0 and skip < 0:
                raise ValueError(
                    f"stream reader {consumer} of {consumers} got no readable sample in epoch {epoch} from "
                    f"{len(self.urls)} shard(s); give fewer workers or more samples"
                )
            epoch, skip, count = epoch + 1, -1, 0

    def summary(self) -> str:
        text = super().summary()
        failed = len(set(self.stats.failed_sources) | set(self.failed_shards))  # each shard once, workers' too
        if failed:
            text += f"; {failed} shard(s) could not be read to the end"
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
            plain, groups = scan_tar(url)
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

"""Skip and count unreadable samples instead of crashing a run (or silently training on garbage).

A decode that fails (a truncated PNG, a corrupt WAV, a mesh with NaN coordinates that the modality rejects
with :class:`CorruptSampleError`) is logged in one line naming the item, counted, and dropped: map-style
datasets wrapped in :class:`SkipCorrupt` return the next readable item instead (or None, ``substitute=False``),
streams wrapped in :class:`SkipCorruptIterable` do not yield it. :func:`skip_corrupt` is the one policy:
:func:`lumina_core.data.build_dataset` applies it to every dataset it builds, so a plugin's dataset only
raises (:class:`CorruptSampleError` naming the file) and never catches. ``summary()`` reads ``"skipped N of M unreadable samples"``.

Counting across ``DataLoader`` workers: the counts live in shared memory (``multiprocessing.Value``), so the
main process sees every worker's skips; the names of skipped items are kept per process (complete with
``num_workers=0``; with workers each skip is still logged, with its name, by the worker that met it).

If every sample of a pass fails (and there were at least a few), the cause is almost surely a bug, not
corrupt data: an iterable pass then raises RuntimeError with the first error attached instead of yielding
nothing.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, IterableDataset

logger = logging.getLogger("lumina.data")
_LOGGED: set[str] = set()  # the unreadable samples already logged by this process


class CorruptSampleError(ValueError):
    """A sample that cannot be read or fails validation (raise it from a dataset's decode).

    Args:
        message: what is wrong, for people.
        name: the item (file name, shard key) it concerns; shown in the skip log.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message if name is None else f"{name}: {message}")
        self.name = name


class SkipStats:
    """Shared counters of seen and skipped samples, plus this process's list of skipped names."""

    def __init__(self, keep_names: int = 1000) -> None:
        self._seen = multiprocessing.Value("q", 0)
        self._skipped = multiprocessing.Value("q", 0)
        self.keep_names = keep_names
        self.names: list[str] = []
        self.reasons: list[str] = []
        self.sources: list[str] = []  # what track_sources named (a stream's shards)
        self._failed = multiprocessing.Array("b", 0)  # per source: could not be read to the end

    @property
    def seen(self) -> int:
        return int(self._seen.value)

    @property
    def skipped(self) -> int:
        return int(self._skipped.value)

    def track_sources(self, names: list[str]) -> None:
        """Name the sources (a stream's shards) whose failures :meth:`fail_source` records, one shared flag
        each, so that every worker's failures are seen, each source counted once however often it fails."""
        self.sources = [str(n) for n in names]
        self._failed = multiprocessing.Array("b", len(self.sources))

    def fail_source(self, name: str) -> None:
        """Record that the source ``name`` (one of :meth:`track_sources`) could not be read to the end: its
        remaining samples were never seen, so it is counted apart from the skipped samples."""
        if name in self.sources:
            self._failed[self.sources.index(name)] = 1

    @property
    def failed_sources(self) -> list[str]:
        """The tracked sources that could not be read to the end (in every worker, so far)."""
        return [name for name, bad in zip(self.sources, self._failed[:], strict=True) if bad]

    def ok(self) -> None:
        with self._seen.get_lock():
            self._seen.value += 1

    def skip(self, name: str, error: BaseException) -> None:
        """Count an unreadable sample and log it - once per sample: meeting the same file again in a later
        epoch counts it as seen, not as another skip, and logs nothing."""
        with self._seen.get_lock():
            self._seen.value += 1
        known = self.__dict__.setdefault("_known", set())
        if name in known:
            return
        known.add(name)
        with self._skipped.get_lock():
            self._skipped.value += 1
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if len(self.names) < self.keep_names:
            self.names.append(name)
            self.reasons.append(reason)
        if name not in _LOGGED:  # once per process, even when the train and val datasets both meet it
            _LOGGED.add(name)
            logger.warning("skipping unreadable sample %s (%s)", name, reason)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if multiprocessing.context.get_spawning_popen() is None:
            # an ordinary copy (deepcopy, pickle to disk): detach the counters, keeping their values
            state["_seen"] = int(self._seen.value)
            state["_skipped"] = int(self._skipped.value)
            state["_failed"] = list(self._failed[:])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in ("_seen", "_skipped"):
            if isinstance(state[key], int):
                state[key] = multiprocessing.Value("q", state[key])
        failed = state.setdefault("_failed", [])
        if isinstance(failed, list):
            state["_failed"] = multiprocessing.Array("b", failed)
        state.setdefault("sources", [])
        self.__dict__.update(state)

    def reset(self) -> None:
        with self._seen.get_lock():
            self._seen.value = 0
        with self._skipped.get_lock():
            self._skipped.value = 0
        self.names.clear()
        self.reasons.clear()
        self._failed[:] = [0] * len(self.sources)
        self.__dict__.get("_known", set()).clear()

    def summary(self) -> str:
        text = f"skipped {self.skipped} of {self.seen} unreadable samples"
        if self.names:
            shown = ", ".join(self.names[:5]) + (", ..." if len(self.names) > 5 else "")
            text += f" ({shown})"
        return text


def _item_name(dataset: Any, index: int, error: BaseException) -> str:
    name = getattr(error, "name", None)
    if isinstance(name, str) and name:
        return name
    namer = getattr(dataset, "item_name", None)
    if callable(namer):
        try:
            return str(namer(index))
        except Exception:  # a broken namer must not hide the real error
            pass
    return f"index {index}"


class CountsSkips:
    """What a skipping dataset reports, read from its :class:`SkipStats` (``self.stats``)."""

    stats: SkipStats

    @property
    def skipped(self) -> int:
        return self.stats.skipped

    @property
    def seen(self) -> int:
        return self.stats.seen

    @property
    def skipped_names(self) -> list[str]:
        return list(self.stats.names)

    def summary(self) -> str:
        return self.stats.summary()

    def reset(self) -> None:
        """Zero the counts (e.g. at each epoch)."""
        self.stats.reset()


class SkipCorrupt(CountsSkips, Dataset):
    """Wrap a map-style dataset so that an unreadable item is skipped and counted: the one policy.

    :func:`lumina_core.data.build_dataset` wraps every map-style dataset it builds in this class (unless the
    dataset already counts its skips with a :class:`SkipStats` of its own), so plugins only raise - ideally
    :class:`CorruptSampleError` naming the file - and never catch.

    The policy:

    * an item whose ``__getitem__`` raises one of ``errors`` is logged once per process with its name (the
      error's ``name``, else ``dataset.item_name(index)``, else ``"index i"``) and counted once;
    * with ``substitute=True`` (the default) the next readable item (indices wrap around) is returned
      instead, so batches keep their size and ``ds[i]`` never returns None; an index found unreadable is
      remembered and not read again. ``substitute=False`` returns None instead (``collate_items`` drops it);
    * when no item at all can be read, a :class:`CorruptSampleError` says so (a bug or the wrong folder, not
      corrupt files);
    * ``IndexError`` (out of range) always propagates, as do ``KeyboardInterrupt`` and the like.

    Args:
        dataset: the wrapped dataset; its other attributes (``score``, ``item_name``, ``condition_kind``,
            ``sizes``...) are forwarded.
        errors: exception types that mean "unreadable sample" (default: any ``Exception``, since image,
            audio and mesh decoders raise many types).
        substitute: replace an unreadable item by the next readable one (True) or by None (False).

    Attributes ``skipped``, ``seen``, ``skipped_names``; ``summary()``; ``reset()`` (e.g. each epoch).
    """

    def __init__(
        self,
        dataset: Dataset,
        errors: tuple[type[BaseException], ...] = (Exception,),
        substitute: bool = True,
    ) -> None:
        self.dataset = dataset
        self.errors = errors
        self.substitute = bool(substitute)
        self.stats = SkipStats()
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"SkipCorrupt({self.dataset!r})"

    def _try(self, index: int) -> tuple[bool, Any]:
        try:
            item = self.dataset[index]
        except IndexError:
            raise
        except self.errors as err:
            self._bad.add(index)
            self.stats.skip(_item_name(self.dataset, index, err), err)
            return False, err
        self.stats.ok()
        return True, item

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for {n} items of {self.dataset!r}")
        index = int(index) % n
        if not self.substitute:
            ok, item = self._try(index)
            return item if ok else None
        first: BaseException | None = None
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:  # known unreadable: counted once, when first met
                continue
            ok, item = self._try(i)
            if ok:
                return item
            first = first or item
        raise CorruptSampleError(
            f"none of the {n} items of {self.dataset!r} could be read ({self.stats.summary()}); "
            f"first error: {first!r}"
        ) from first

    def __getattr__(self, name: str) -> Any:
        # forward dataset-specific API (score, item_name, condition_kind, ...) to the wrapped dataset
        if name in ("dataset", "errors", "stats", "substitute", "_bad") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def skip_corrupt(dataset: Any) -> Any:
    """Apply the skip-and-count policy to a freshly built dataset (what :func:`~lumina_core.data.build_dataset`
    does): a map-style dataset is wrapped in :class:`SkipCorrupt`; a dataset that already counts its skips
    (it has ``stats``, a :class:`SkipStats`: a :class:`SkipCorruptIterable` stream, a
    :class:`~lumina_core.data.shards.ShardDataset`, or a dataset with its own loop) and an iterable dataset
    (which skips in its decode step, see :class:`SkipCorruptIterable`) are returned as they are."""
    from torch.utils.data import IterableDataset

    if isinstance(getattr(dataset, "stats", None), SkipStats) or isinstance(dataset, IterableDataset):
        return dataset
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        return dataset
    return SkipCorrupt(dataset)


@dataclass
class PassTally:
    """One pass over a stream: samples decoded (``ok``), samples skipped (``bad``) and the first failure."""

    ok: int = 0
    bad: int = 0
    first_error: BaseException | None = None


class SkipCorruptIterable(CountsSkips, IterableDataset):
    """Decode a stream of raw samples, skipping (and counting) those whose ``decode`` raises.

    Args:
        source: an iterable of raw samples (re-iterated each epoch).
        decode: raw sample -> item; raising one of ``errors``, or returning None, marks it unreadable.
        name: raw sample -> name for the log (default: its ``"__key__"`` and ``"__url__"`` if a dict).
        errors: exception types that mean "unreadable sample".
        log_summary: log ``summary()`` when a pass over the stream ends.
        min_bad_to_fail: a pass in which every sample failed, and at least this many, raises RuntimeError.
    """

    def __init__(
        self,
        source: Iterable[Any],
        decode: Callable[[Any], Any],
        name: Callable[[Any], str] | None = None,
        errors: tuple[type[BaseException], ...] = (Exception,),
        log_summary: bool = True,
        min_bad_to_fail: int = 8,
    ) -> None:
        self.source = source
        self.decode = decode
        self.name = name or sample_name
        self.errors = errors
        self.log_summary = log_summary
        self.min_bad_to_fail = min_bad_to_fail
        self.stats = SkipStats()

    def __iter__(self) -> Iterator[Any]:
        return self.decode_stream(iter(self.source))

    def decode_one(self, raw: Any, tally: PassTally) -> Any | None:
        """The decoded item, or None for a raw sample that could not be decoded (logged, and counted both in
        ``stats`` and in the pass's ``tally``)."""
        try:
            item = self.decode(raw)
            if item is None:
                raise CorruptSampleError("decode returned None")
        except self.errors as err:
            self.stats.skip(_safe_name(self.name, raw), err)
            tally.bad += 1
            tally.first_error = tally.first_error or err
            return None
        self.stats.ok()
        tally.ok += 1
        return item

    def end_pass(self, tally: PassTally) -> None:
        """At the end of a pass: log the summary if anything was skipped; a pass in which every sample failed
        (at least ``min_bad_to_fail``) raises RuntimeError - a bug or the wrong data, not corrupt files."""
        if self.log_summary and tally.bad:
            logger.warning(self.summary())
        if tally.bad >= self.min_bad_to_fail and not tally.ok:
            raise RuntimeError(
                f"every sample of this pass failed to decode ({tally.bad} of {tally.bad}); this looks like a bug "
                f"in the decode function or the wrong data, not corrupt files. First error: {tally.first_error!r}"
            ) from tally.first_error

    def decode_stream(self, raws: Iterator[Any]) -> Iterator[Any]:
        """Decode ``raws`` one by one, skipping and counting failures; one pass = one call."""
        tally = PassTally()
        for raw in raws:
            item = self.decode_one(raw, tally)
            if item is not None:
                yield item
        self.end_pass(tally)


def skip_summary(dataset: Any) -> str | None:
    """``dataset.summary()`` when ``dataset`` (or the dataset it wraps) skipped samples, else None.

    For trainers: call at the end of each epoch and log the line when it is not None.
    """
    while dataset is not None:
        stats = dataset.__dict__.get("stats") if hasattr(dataset, "__dict__") else None
        if isinstance(stats, SkipStats):
            return dataset.summary() if stats.skipped else None
        dataset = dataset.__dict__.get("dataset") if hasattr(dataset, "__dict__") else None
    return None


def sample_name(raw: Any) -> str:
    """A readable name for a raw sample: ``"<url>:<key>"`` for webdataset samples, else ``repr`` (short)."""
    if isinstance(raw, dict) and "__key__" in raw:
        url = raw.get("__url__")
        return f"{url}:{raw['__key__']}" if url else str(raw["__key__"])
    return repr(raw)[:80]


def _safe_name(namer: Callable[[Any], str], raw: Any) -> str:
    try:
        return str(namer(raw))
    except Exception:
        return repr(raw)[:80]


def skip_report(dataset: Any) -> dict[str, Any] | None:
    """``{"seen", "skipped", "names"}`` of a dataset that skips unreadable samples (one with ``stats``, a
    :class:`SkipStats`, or ``skipped`` / ``seen`` counts); None for a dataset that does not skip. A stream
    with shards that could not be read to the end adds ``failed_shards`` (how many) and
    ``failed_shard_names``."""
    stats = getattr(dataset, "stats", None)
    if isinstance(stats, SkipStats):
        report: dict[str, Any] = {"seen": stats.seen, "skipped": stats.skipped, "names": list(stats.names)}
        failed = stats.failed_sources
        if failed:
            report.update(failed_shards=len(failed), failed_shard_names=failed[: stats.keep_names])
        return report
    skipped = getattr(dataset, "skipped", None)
    if isinstance(skipped, int):
        names = getattr(dataset, "skipped_names", [])
        return {"seen": int(getattr(dataset, "seen", 0) or 0), "skipped": skipped, "names": list(names)}
    return None


@contextlib.contextmanager
def corrupt_on(errors: tuple[type[BaseException], ...], name: str) -> Iterator[None]:
    """Turn the decode errors ``errors`` raised inside the block into a :class:`CorruptSampleError` naming
    ``name`` (a file, a shard key), for datasets whose readers raise library-specific types::

        with corrupt_on((OSError, ValueError), str(path)):
            image = decode(path)
    """
    try:
        yield
    except CorruptSampleError:
        raise
    except errors as err:
        raise CorruptSampleError(f"{type(err).__name__}: {err}".splitlines()[0][:300], name=name) from err

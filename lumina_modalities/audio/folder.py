"""A user's own audio + caption pairs: a folder (``dog.wav`` + ``dog.txt``) or webdataset shards packed from
such a folder by ``lumina data pack``.

Every clip goes through :func:`.io.load_audio`: resampled to ``sample_rate`` if needed (one log line),
averaged to mono, and cropped to ``max_seconds`` (``on_long="crop"``, default) or refused
(``on_long="error"``). An unreadable clip raises ``CorruptSampleError`` naming the file; the core's one
skip-and-count policy (:class:`lumina_core.data.robust.SkipCorrupt`, applied by
:func:`lumina_core.data.build_dataset`) replaces it by the next readable one, a warning names the file, and
``skipped`` / ``summary()`` report how many were skipped ("skipped 2 of 10 unreadable samples (...)").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumina_core.data import ConditionParameter, LuminaDataset
from lumina_core.data.folder import list_pairs
from lumina_core.data.robust import corrupt_on
from lumina_core.data.stream import ShardStream
from lumina_core.registry import DATASETS

from .io import AUDIO_EXTENSIONS, load_audio


class _ReadsClips(ConditionParameter, LuminaDataset):
    """``__getitem__`` reads clip ``i`` with ``_read(i)``; an unreadable clip raises
    :class:`~lumina_core.data.robust.CorruptSampleError` naming it (``AudioReadError`` is one). Skipping and
    counting is the core's policy, applied when :func:`lumina_core.data.build_dataset` builds the dataset."""

    def _read(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def item_name(self, index: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)  # type: ignore[arg-type]
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        with corrupt_on((OSError, RuntimeError, EOFError), self.item_name(int(index) % n)):
            return self._read(int(index) % n)


def _check(sample_rate: int, max_seconds: float | None, on_long: str, condition: str) -> None:
    problems = []
    if sample_rate <= 0:
        problems.append(f"sample_rate must be positive; got {sample_rate}")
    if max_seconds is not None and max_seconds <= 0:
        problems.append(f"max_seconds must be positive or None; got {max_seconds}")
    if on_long not in ("crop", "error"):
        problems.append(f"on_long must be 'crop' or 'error'; got {on_long!r}")
    if condition not in ("text", "none"):
        problems.append(f"condition must be 'text' or 'none'; got {condition!r}")
    if problems:
        raise ValueError("; ".join(problems))


@DATASETS.register("audio_folder")
class AudioFolderDataset(_ReadsClips):
    """Audio files under ``root`` (recursively; WAV, FLAC, OGG, AIFF), each with a same-named ``.txt`` caption.

    Args:
        root: the folder.
        sample_rate: clips are resampled to this rate (the plugin codec's rate).
        max_seconds: longest clip; longer ones are cropped or refused (``on_long``). None: no limit.
        on_long: ``"crop"`` (keep the first ``max_seconds``) or ``"error"``.
        condition: ``"text"`` (the caption) or ``"none"``.
        missing_caption: ``"error"``, ``"empty"`` or ``"skip"`` (see :func:`lumina_core.data.folder.list_pairs`).
        split: accepted for the trainer's ``split=`` keyword; every split reads the whole folder (point
            ``val_params.root`` at another folder for a held-out set).
    """

    modality = "audio"

    def __init__(self, root: str, sample_rate: int = 22050, max_seconds: float | None = 10.0,
                 on_long: str = "crop", condition: str = "text", missing_caption: str = "empty",
                 split: str = "train") -> None:
        _check(sample_rate, max_seconds, on_long, condition)
        exts = [e.lstrip(".") for e in AUDIO_EXTENSIONS]
        self.root = Path(root).expanduser()
        self.pairs = list_pairs(self.root, extensions=exts, missing_caption=missing_caption)
        self.sample_rate, self.max_seconds, self.on_long = int(sample_rate), max_seconds, on_long
        self.condition = condition

    @classmethod
    def list_samples(cls, root: str, missing_caption: str = "empty") -> list:
        """The folder's samples for ``lumina data pack --modality audio`` (clip + caption pairs, the layout
        this dataset reads; ``audio_shards`` and ``audio_stream`` read the shards back)."""
        from lumina_core.data.pack import folder_samples

        return folder_samples(Path(root).expanduser(), [e.lstrip(".") for e in AUDIO_EXTENSIONS], missing_caption)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"AudioFolderDataset({str(self.root)!r}, {len(self)} clips)"

    def item_name(self, index: int) -> str:
        return str(self.pairs[index].path)

    def _read(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        wav = load_audio(pair.path, self.sample_rate, self.max_seconds, self.on_long)
        caption = pair.caption()
        return {"sample": wav, "condition": caption if self.condition == "text" else None,
                "meta": {"path": str(pair.path), "caption": caption}}


@DATASETS.register("audio_shards")
class AudioShardsDataset(_ReadsClips):
    """Audio + caption pairs from webdataset ``.tar`` shards (as written by ``lumina data pack``).

    Each webdataset sample holds one audio member (``.wav``, ``.flac``, ...) and a ``.txt`` caption sharing its
    key. The shards are indexed once (member names), so items can be read in any order.

    Args:
        path: a shard file, a folder of ``*.tar`` shards, or a glob pattern.
        sample_rate, max_seconds, on_long, condition, split: as for ``audio_folder``.
    """

    modality = "audio"

    def __init__(self, path: str, sample_rate: int = 22050, max_seconds: float | None = 10.0,
                 on_long: str = "crop", condition: str = "text", split: str = "train") -> None:
        from lumina_core.data.shards import IndexedShards

        _check(sample_rate, max_seconds, on_long, condition)
        try:
            self.index = IndexedShards(str(Path(path).expanduser()), where=_has_audio)
        except FileNotFoundError as err:
            raise ValueError(f"audio_shards: no .tar shards at {path!r} ({err})") from err
        self.shards = [Path(u) for u in self.index.urls]
        if not len(self.index):
            raise ValueError(f"audio_shards: no audio samples in {[str(s) for s in self.shards]}")
        self.sample_rate, self.max_seconds, self.on_long = int(sample_rate), max_seconds, on_long
        self.condition = condition

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"AudioShardsDataset({len(self.shards)} shards, {len(self)} clips)"

    def item_name(self, index: int) -> str:
        members = self.index.members(index)
        return f"{self.index.url(index)}:{members[_audio_ext(members)]}"

    def _read(self, index: int) -> dict[str, Any]:
        return decode_audio_sample(self.index.read(index), self.sample_rate, self.max_seconds, self.on_long,
                                   self.condition)



@DATASETS.register("audio_stream")
class AudioStreamDataset(ConditionParameter, ShardStream):
    """Audio + caption pairs streamed from webdataset shards, for sets too large to index: local files, or
    URLs and ``pipe:`` commands. Decoded by :func:`decode_audio_sample`, like ``audio_shards``; see
    :class:`lumina_core.data.stream.ShardStream` for the train/val streams.

    Args:
        urls: the shards.
        sample_rate, max_seconds, on_long, condition: as for ``audio_folder``.
        split, resampled, epoch_length, shuffle_buffer, shuffle_shards, seed: as for ``ShardStream``.
    """

    modality = "audio"

    def __init__(self, urls: str | list[str], sample_rate: int = 22050, max_seconds: float | None = 10.0,
                 on_long: str = "crop", condition: str = "text", split: str = "train", resampled: bool = False,
                 epoch_length: int | None = None, shuffle_buffer: int = 1000, shuffle_shards: bool = True,
                 seed: int = 0) -> None:  # fmt: skip
        import functools

        _check(sample_rate, max_seconds, on_long, condition)
        self.sample_rate, self.max_seconds, self.on_long = int(sample_rate), max_seconds, on_long
        self.condition = condition
        decode = functools.partial(decode_audio_sample, sample_rate=self.sample_rate, max_seconds=max_seconds,
                                   on_long=on_long, condition=condition)
        super().__init__(urls, decode, split, resampled, epoch_length, shuffle_buffer, shuffle_shards, seed)


def decode_audio_sample(sample: dict[str, Any], sample_rate: int = 22050, max_seconds: float | None = 10.0,
                        on_long: str = "crop", condition: str = "text") -> dict[str, Any]:
    """A raw webdataset sample (bytes by extension, as packed by ``lumina data pack``) -> dataset item.

    The one decoding path of packed audio: ``audio_shards`` (indexed reads) and ``audio_stream`` (streaming)
    both call it. A missing or unreadable clip, or a caption that is not UTF-8, raises ``CorruptSampleError``
    naming ``"<shard>:<key>"``."""
    from lumina_core.data.robust import CorruptSampleError, sample_name
    from lumina_core.data.shards import sample_caption

    name = sample_name(sample)
    exts = [e.lstrip(".") for e in AUDIO_EXTENSIONS if e.lstrip(".") in sample]
    if not exts:
        raise CorruptSampleError(
            f"no audio member (keys {sorted(k for k in sample if not k.startswith('__'))})", name=name
        )
    wav = load_audio(bytes(sample[exts[0]]), sample_rate, max_seconds, on_long, name=name)
    caption = sample_caption(sample) if "txt" in sample else ""
    return {"sample": wav, "condition": caption if condition == "text" else None,
            "meta": {"key": sample.get("__key__"), "shard": sample.get("__url__"), "caption": caption}}


def _audio_ext(members: dict[str, Any]) -> str:
    """The sample's audio extension (without dot), by :data:`.io.AUDIO_EXTENSIONS` preference."""
    return next(e.lstrip(".") for e in AUDIO_EXTENSIONS if e.lstrip(".") in members)


def _has_audio(members: dict[str, str]) -> bool:
    return any(e.lstrip(".") in members for e in AUDIO_EXTENSIONS)

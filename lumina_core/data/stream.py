"""Streaming datasets in a training loop: the loader, the saved position, and the first items of a split.

A streamed (iterable) dataset such as :class:`lumina_core.data.shards.ShardDataset` or a plugin's
``*_stream`` dataset has no length and no index, so the trainer's seeded index sampler cannot drive it.
Instead:

* :func:`stream_loader` builds its ``DataLoader`` (the dataset splits the shards among the loader's
  workers and the distributed ranks itself);
* :class:`StreamPosition` watches the batches the training step *consumed* (not the ones prefetched)
  and returns, as a checkpointable dict of primitives, where each reader of the stream is;
* on resume, ``stream_loader(..., state=saved)`` continues every reader from its saved place, so the
  resumed run sees the same items in the same order as a run that was never interrupted (when the shards,
  the recipe and the number of workers x ranks are unchanged; see ``ShardDataset``).

How the training loop uses it (per task whose dataset is iterable)::

    from lumina_core.data.stream import StreamPosition, is_stream, stream_loader

    if is_stream(dataset):
        position = StreamPosition()
        position.load_state_dict(saved.get(task))            # None on a fresh run
        loader = stream_loader(dataset, batch_size, num_workers, state=position.state_dict() or None)
    ...
    position.update(batch)                                   # in training_step, on the batch trained on
    state[task] = position.state_dict()                      # into the checkpoint (ints, lists, strings)

With several ranks every rank tracks its own readers: call :func:`gather_state` on every rank (it is a
collective) and save its result.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from lumina_core.data.contract import LuminaStream
from lumina_core.data.shards import STREAM_KEY, ShardDataset


def is_stream(dataset: Any) -> bool:
    """True for an iterable dataset (no index): it needs :func:`stream_loader`, not an index sampler."""
    from torch.utils.data import IterableDataset

    return isinstance(dataset, IterableDataset)


def stream_loader(
    dataset: Any, batch_size: int, num_workers: int = 0, state: Mapping[str, Any] | None = None, **kwargs: Any
):
    """A ``DataLoader`` over the streamed ``dataset`` (collated by :func:`lumina_core.data.collate_items`)
    that continues from ``state`` (:meth:`StreamPosition.state_dict`; None: from the beginning).

    ``kwargs`` go to ``DataLoader`` (``prefetch_factor``, ``pin_memory``...); batches come from the workers
    in turn, which is what makes the saved position exact."""
    from torch.utils.data import DataLoader

    from lumina_core.data import collate_items

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if not is_stream(dataset):
        raise ValueError(
            f"stream_loader takes an iterable (streamed) dataset; got {type(dataset).__name__}, which is "
            "map-style: index it with a sampler instead"
        )
    loader_state = getattr(dataset, "load_state_dict", None)
    if state and loader_state is None:
        raise ValueError(f"{type(dataset).__name__} cannot continue from a saved position (no load_state_dict)")
    if loader_state is not None:
        loader_state(dict(state) if state else None)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_items,
        persistent_workers=False,
        in_order=True,
        **kwargs,
    )


class StreamPosition:
    """Where each reader of a stream is, from the batches the training step consumed.

    Every streamed item carries ``meta["_stream"] = [rank, world, worker, workers, epoch, position,
    count]`` (see :data:`lumina_core.data.shards.STREAM_KEY`); :meth:`update` keeps, per reader, the last
    one seen, and which worker's batch comes next.
    """

    def __init__(self) -> None:
        self.world: int | None = None
        self.workers: int | None = None
        self.positions: dict[str, list[int]] = {}
        self.next_worker = 0
        self.batches = 0

    def update(self, batch: Mapping[str, Any]) -> None:
        """Record a batch (``collate_items`` output: ``batch["meta"]`` a list of dicts) the step trained on."""
        last = None
        for meta in batch.get("meta", ()):
            tag = meta.get(STREAM_KEY) if isinstance(meta, dict) else None
            if tag is None:
                continue
            rank, world, worker, workers, epoch, pos, count = (int(v) for v in tag)
            self.world, self.workers = world, workers
            key = str(rank * workers + worker)
            old = self.positions.get(key)
            if old is None or (epoch, pos) > (old[0], old[1]):
                self.positions[key] = [epoch, pos, count]
            last = (worker, workers)
        if last is not None:
            self.next_worker = (last[0] + 1) % last[1]
            self.batches += 1

    def state_dict(self) -> dict[str, Any]:
        """The position as plain values (loadable with ``torch.load(weights_only=True)``); ``{}`` before the
        first streamed batch."""
        if not self.positions:
            return {}
        return {
            "world": self.world,
            "workers": self.workers,
            "positions": {k: list(v) for k, v in self.positions.items()},
            "next_worker": self.next_worker,
            "batches": self.batches,
        }

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Start from a saved :meth:`state_dict` (None or ``{}``: from the beginning)."""
        self.__init__()
        if not state:
            return
        self.world, self.workers = int(state["world"]), int(state["workers"])
        self.positions = {str(k): [int(x) for x in v] for k, v in dict(state["positions"]).items()}
        self.next_worker = int(state.get("next_worker", 0))
        self.batches = int(state.get("batches", 0))


def merge_states(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One state from the ranks' :meth:`StreamPosition.state_dict` (each rank knows only its readers)."""
    states = [s for s in states if s]
    if not states:
        return {}
    out = {k: v for k, v in states[0].items() if k != "positions"}
    out["positions"] = {}
    for s in states:
        out["positions"].update({str(k): list(v) for k, v in s["positions"].items()})
    return out


def gather_state(position: StreamPosition) -> dict[str, Any]:
    """Every rank's readers in one state; a collective under ``torch.distributed`` (call it on every rank),
    just ``position.state_dict()`` otherwise."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return position.state_dict()
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, position.state_dict())
    return merge_states(states)


def first_items(dataset: Any, n: int) -> list[Any]:
    """The first ``n`` items of a dataset: ``dataset[i]`` for a map-style one, the first ``n`` yielded
    items of a stream (previews and evaluation of a streamed val split). Fewer when there are fewer."""
    if not is_stream(dataset) and hasattr(dataset, "__len__"):
        return [dataset[i] for i in range(min(int(n), len(dataset)))]
    return list(itertools.islice(iter(dataset), int(n)))


class ShardStream(ShardDataset, LuminaStream):
    """Base of a registered streaming dataset: webdataset shards decoded by the modality's one decode function
    (the same one its indexed ``*_shards`` dataset uses), for data sets too large to index.

    A subclass sets ``modality`` and ``condition_kind`` and passes its decode function. The split decides
    the defaults: ``"train"`` streams epoch after epoch for ever (``repeat``), shuffled (shards and a sample
    buffer), resampled if asked; ``"val"`` is one pass in shard order, unshuffled and not resampled, so
    previews and evaluation (:func:`first_items`) see the same items every time (``epoch_length`` then caps
    it). Corrupt samples and unreadable shards are skipped and counted (``summary()``).

    Args:
        urls: shard paths, patterns or URLs (local files, ``file://``, ``pipe:CMD``, HTTP(S), ``gs://``...).
        decode: raw sample -> item.
        split: ``"train"`` or ``"val"``.
        resampled: draw shards with replacement (train only; needs ``epoch_length``).
        epoch_length: items per epoch over all readers.
        shuffle_buffer: samples in the shuffle buffer (train only).
        shuffle_shards: shuffle the shard order each epoch (train only).
        seed: seed of the shuffles and the resampling.
        repeat: override the split's default (train: True, val: False).
    """

    modality: str = ""
    condition_kind: str = "none"

    def __init__(
        self,
        urls: Any,
        decode: Any,
        split: str = "train",
        resampled: bool = False,
        epoch_length: int | None = None,
        shuffle_buffer: int = 1000,
        shuffle_shards: bool = True,
        seed: int = 0,
        repeat: bool | None = None,
    ) -> None:
        from lumina_core.data.contract import check_split

        self.split = check_split(split)
        train = split == "train"
        super().__init__(
            urls,
            decode,
            shuffle_shards=bool(shuffle_shards) and train,
            shuffle_buffer=int(shuffle_buffer) if train else 0,
            seed=seed,
            resampled=bool(resampled) and train,
            epoch_length=epoch_length,
            repeat=train if repeat is None else bool(repeat),
        )

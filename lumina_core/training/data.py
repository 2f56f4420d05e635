"""Training data: a seeded, resumable infinite sampler and a loader that draws one batch per task per step.

The sampler visits the dataset epoch after epoch, each epoch in the order ``randperm(n)`` drawn from a
generator seeded with ``seed + epoch``; position ``k`` of the stream is epoch ``k // n``, offset ``k % n``.
Restoring a run needs only the number of items consumed so far, which the training state records per task
(``batches consumed x batch size``): prefetching workers never shift it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """Infinite stream of indices of a size-``n`` dataset, reshuffled each epoch, starting at ``start``."""

    def __init__(self, n: int, seed: int = 0, start: int = 0, shuffle: bool = True) -> None:
        if n <= 0:
            raise ValueError(f"cannot sample from an empty dataset (size {n})")
        self.n, self.seed, self.start, self.shuffle = int(n), int(seed), int(start), bool(shuffle)

    def epoch_order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            yield from self.epoch_order(epoch)[offset:]
            epoch, offset = epoch + 1, 0


def task_loader(dataset: Any, batch_size: int, num_workers: int, seed: int, start_batches: int) -> DataLoader:
    """A DataLoader over ``dataset`` (collated by ``lumina_core.data.collate_items``) that resumes after
    ``start_batches`` batches."""
    from lumina_core.data import collate_items

    sampler = ResumableSampler(len(dataset), seed=seed, start=start_batches * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        persistent_workers=False,
    )


class MultiTaskBatches:
    """Iterable of ``{task: batch}``: every step gets one batch from each task's loader (no length)."""

    def __init__(self, loaders: dict[str, DataLoader]) -> None:
        self.loaders = loaders

    def __iter__(self) -> Iterator[dict[str, Any]]:
        iters = {name: iter(loader) for name, loader in self.loaders.items()}
        while True:
            yield {name: next(it) for name, it in iters.items()}

"""Training data: a seeded, resumable infinite sampler, and the stream of per-step batches of the tasks.

The sampler visits the dataset epoch after epoch, each epoch in the order ``randperm(n)`` drawn from a
generator seeded with ``seed + epoch``; position ``k`` of the stream is epoch ``k // n``, offset ``k % n``.
Restoring a run needs only the number of items consumed so far, which the training state records per task
(``batches consumed x batch size``): prefetching workers never shift it.

Task mixing (``train.mixing``): ``all`` gives every step one batch of every task (a fixed composition, each
task at its own ``data.batch_size``); ``weighted`` gives every step one batch of one task, task ``k`` drawn
with probability ``w_k / sum_j w_j`` (``draw_weight``). Draw number ``i`` is a pure function of ``(seed, i)``
(:func:`draw_task`), so it is the same on every rank, and a resume that knows how many draws were made
continues the same sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from lumina_core.config.schema import MIXING_MODES


class ResumableSampler(Sampler[int]):
    """Infinite stream of indices of a size-``n`` dataset, reshuffled each epoch, starting at ``start``.

    With ``world > 1`` ranks the one global stream is dealt out in batches: global batch ``g`` (items
    ``g * batch_size ...``) goes to rank ``g mod world``, so the ranks together visit every item once per epoch
    and never the same item in a step; ``start`` is then the position in the global stream."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        start: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        batch_size: int = 1,
    ) -> None:
        if n <= 0:
            raise ValueError(f"cannot sample from an empty dataset (size {n})")
        if not 0 <= int(rank) < int(world):
            raise ValueError(f"rank must be in [0, world) = [0, {world}); got {rank}")
        self.n, self.seed, self.start, self.shuffle = int(n), int(seed), int(start), bool(shuffle)
        self.rank, self.world, self.batch_size = int(rank), int(world), int(batch_size)

    def epoch_order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def global_stream(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            yield from self.epoch_order(epoch)[offset:]
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[int]:
        stream = self.global_stream()
        if self.world == 1:
            yield from stream
            return
        bs, lo = self.batch_size, self.rank * self.batch_size
        while True:
            step = [next(stream) for _ in range(bs * self.world)]  # one global step: every rank's batch
            yield from step[lo : lo + bs]


def task_loader(
    dataset: Any,
    batch_size: int,
    num_workers: int,
    seed: int,
    start_batches: int,
    rank: int = 0,
    world: int = 1,
) -> DataLoader:
    """A DataLoader over ``dataset`` (collated by ``lumina_core.data.collate_items``) that resumes after
    ``start_batches`` batches of this rank (``world`` ranks read disjoint batches of one seeded stream)."""
    from lumina_core.data import collate_items

    sampler = ResumableSampler(
        len(dataset), seed=seed, start=start_batches * batch_size * world, rank=rank, world=world,
        batch_size=batch_size,
    )  # fmt: skip
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        persistent_workers=False,
    )


def draw_task(weights: Sequence[float], seed: int, index: int) -> int:
    """The task of draw ``index`` in ``weighted`` mixing: ``k`` with probability ``weights[k] / sum(weights)``,
    from a generator seeded by ``(seed, index)`` alone (no state to carry, identical on every rank)."""
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if w.numel() == 0 or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"draw weights must be >= 0 and not all zero; got {list(weights)}")
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(index)) % (2**63 - 1))
    return int(torch.multinomial(w, 1, generator=g).item())


class MultiTaskBatches:
    """Iterable of ``{task: batch}`` per step (no length): ``mode="all"`` one batch from each task's loader,
    ``mode="weighted"`` one batch from one task drawn with ``weights``; ``start_draw`` is the number of
    weighted draws already made (a resumed run continues the sequence)."""

    def __init__(
        self,
        loaders: dict[str, DataLoader],
        mode: str = "all",
        weights: dict[str, float] | None = None,
        seed: int = 0,
        start_draw: int = 0,
    ) -> None:
        if mode not in MIXING_MODES:
            raise ValueError(f"train.mixing must be one of {MIXING_MODES}; got {mode!r}")
        self.loaders, self.mode, self.seed, self.start_draw = loaders, mode, int(seed), int(start_draw)
        self.names = list(loaders)
        self.weights = [float((weights or {}).get(n, 1.0)) for n in self.names]
        if mode == "weighted":
            draw_task(self.weights, self.seed, 0)  # validates the weights before the first step

    def __iter__(self) -> Iterator[dict[str, Any]]:
        iters: dict[str, Iterator] = {}

        def batch_of(name: str) -> Any:
            if name not in iters:  # a task is only read once it is drawn (its workers start then)
                iters[name] = iter(self.loaders[name])
            return next(iters[name])

        index = self.start_draw
        while True:
            if self.mode == "all":
                yield {name: batch_of(name) for name in self.names}
            else:
                name = self.names[draw_task(self.weights, self.seed, index)]
                index += 1
                yield {name: batch_of(name)}

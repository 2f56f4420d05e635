"""Multi-aspect training: bucket resolutions of (about) equal area, and a batch sampler that keeps each
batch inside one bucket so no tokens are wasted on padding.

The released recipe trains on aspect-ratio buckets up to ratio 4. Mixed sizes can also share a batch
(the plugin right-pads tokens and masks them); buckets are the cheaper choice for large datasets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch


def bucket_sizes(side: int, multiple: int, max_ratio: float = 4.0) -> list[tuple[int, int]]:
    """(H, W) sizes, multiples of ``multiple``, with ``H * W <= side**2`` as large as possible per shape,
    and aspect ratios from ``1 / max_ratio`` to ``max_ratio``; sorted by ``H / W``."""
    if side % multiple:
        raise ValueError(f"side ({side}) must be a multiple of {multiple}")
    if max_ratio < 1:
        raise ValueError(f"max_ratio must be >= 1; got {max_ratio}")
    area = side * side
    out = set()
    for h in range(multiple, side * 4 + 1, multiple):
        w = (area // h) // multiple * multiple
        if w >= multiple and max(h / w, w / h) <= max_ratio + 1e-9:
            out.add((h, w))
    return sorted(out, key=lambda s: s[0] / s[1])


def nearest_bucket(h: int, w: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to ``h / w`` (in log ratio)."""
    if not buckets:
        raise ValueError("no buckets given")
    target = math.log(h / w)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - target))


class AspectRatioBucketSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices whose samples share one size.

    Args:
        sizes: the (H, W) (or any hashable size key) of every sample, in dataset order.
        batch_size: samples per batch.
        shuffle: shuffle within buckets and the order of batches (seeded, new order every epoch).
        seed: base seed; epoch ``e`` uses ``seed + e`` (call :meth:`set_epoch`).
        drop_last: drop each bucket's last incomplete batch.
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, ...]],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.groups: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(sizes):
            self.groups.setdefault(tuple(s), []).append(i)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = []
        for key in sorted(self.groups):
            idx = self.groups[key]
            if self.shuffle:
                idx = [idx[i] for i in torch.randperm(len(idx), generator=gen).tolist()]
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        if self.drop_last:
            return sum(len(v) // self.batch_size for v in self.groups.values())
        return sum(math.ceil(len(v) / self.batch_size) for v in self.groups.values())

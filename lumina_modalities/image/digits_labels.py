"""Real handwritten digits for recognition at one or several resolutions (any-resolution training).

The 8x8 scikit-learn digits (see :mod:`.digits`) are upsampled to every size in ``sizes``; the dataset holds
each (digit, size) pair once, so a shuffled loader mixes resolutions within a batch (the tokenizer pads the
smaller images). One size reproduces the fixed-resolution set. Labels: ``condition`` is the digit and
``meta["label"]`` its name ``"0"`` .. ``"9"``; ``meta["size"]`` the side in pixels.

``per_class`` keeps few labels (semi-supervised settings): the first ``per_class`` digits of each class in the
training split's fixed (seeded, shuffled) order, so the subset is balanced and the same in every run. It
applies to ``split="train"`` only: the held-out split stays all 297 digits, so scores of runs with different
``per_class`` are read against the same set (recipes merge ``val_params`` over ``params``, so a ``per_class``
in ``params`` reaches the held-out split too, where it is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lumina_core.data import LuminaDataset
from lumina_core.registry import DATASETS

from .digits import split_arrays


@DATASETS.register("digits_labelled")
class LabelledDigitsDataset(LuminaDataset):
    """Digits at ``size`` px, or at each of ``sizes`` (item ``i`` is digit ``i // len(sizes)``).

    Args:
        size: one output side in pixels (used when ``sizes`` is not given).
        sizes: several sides; every digit appears once at each.
        split: "train" (1500 digits) or "val"/"test" (the other 297).
        channels: 1 (grey) or 3 (grey repeated).
        per_class: keep only the first this many digits of each class of the training split (None: all);
            ignored for "val"/"test". The smallest class of the 1500 training digits (2) has 135.
    """

    modality = "image"
    condition_kind = "class"  # items carry integer labels
    class_names = tuple(str(d) for d in range(10))

    def __init__(
        self,
        size: int = 32,
        sizes: Sequence[int] | None = None,
        split: str = "train",
        channels: int = 1,
        per_class: int | None = None,
    ) -> None:
        chosen = [int(s) for s in (sizes if sizes else [size])]
        bad = [s for s in chosen if s < 8]
        if bad:
            raise ValueError(f"digit sizes must be at least 8 pixels; got {bad}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {channels}")
        self.images, self.labels = split_arrays(split)
        if per_class is not None:
            keep = first_per_class(split_arrays("train")[1], per_class)  # checked for every split
            if split == "train":
                self.images, self.labels = self.images[keep], self.labels[keep]
        self.per_class = per_class
        self.sizes, self.split, self.channels = chosen, split, int(channels)

    def __len__(self) -> int:
        return len(self.labels) * len(self.sizes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        digit, which = divmod(int(index), len(self.sizes))
        size = self.sizes[which]
        img = torch.from_numpy(self.images[digit])[None, None] / 8.0 - 1.0  # (1, 1, 8, 8) in [-1, 1]
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
        img = img[0].clamp(-1, 1).expand(self.channels, -1, -1).contiguous()
        label = int(self.labels[digit])
        return {
            "sample": img,
            "condition": label,
            "meta": {"label": str(label), "size": size, "index": digit},
        }


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices (ascending) of the first ``per_class`` items of each class in ``labels``' order.

    Raises ValueError when ``per_class`` is not a positive integer or a class has fewer items than asked for.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(
            f"per_class must be a positive integer (labelled digits per class) or None; got {per_class!r}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    short = {int(c): int(n) for c, n in zip(classes, counts, strict=True) if n < per_class}
    if short:
        raise ValueError(
            f"per_class={per_class} is more than some classes have in the training split (at most "
            f"{int(counts.min())} for every class); classes with fewer digits: {short}"
        )
    keep = [np.flatnonzero(labels == c)[:per_class] for c in classes]
    return np.sort(np.concatenate(keep))

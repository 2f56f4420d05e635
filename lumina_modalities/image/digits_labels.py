"""Real handwritten digits for recognition at one or several resolutions (any-resolution training).

The 8x8 scikit-learn digits (see :mod:`.digits`) are upsampled to every size in ``sizes``; the dataset holds
each (digit, size) pair once, so a shuffled loader mixes resolutions within a batch (the tokenizer pads the
smaller images). One size reproduces the fixed-resolution set. Labels: ``condition`` is the digit and
``meta["label"]`` its name ``"0"`` .. ``"9"``; ``meta["size"]`` the side in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    """

    modality = "image"
    condition_kind = "class"  # items carry integer labels
    class_names = tuple(str(d) for d in range(10))

    def __init__(
        self, size: int = 32, sizes: Sequence[int] | None = None, split: str = "train", channels: int = 1
    ) -> None:
        chosen = [int(s) for s in (sizes if sizes else [size])]
        bad = [s for s in chosen if s < 8]
        if bad:
            raise ValueError(f"digit sizes must be at least 8 pixels; got {bad}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {channels}")
        self.images, self.labels = split_arrays(split)
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

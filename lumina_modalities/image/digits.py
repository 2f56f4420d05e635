"""Real handwritten digits (``sklearn.datasets.load_digits``: 1797 images of 8x8, values 0..16), upsampled,
class- or caption-conditioned, with a classifier-based checker.

The checker area-averages a generated image back to 8x8 on the 0..16 scale and classifies it with an RBF
support-vector machine fitted once (per process) on the training split of the real digits; the score is the
accuracy with respect to the requested digit (chance: 0.1).

``digit_acc`` needs a requested digit; for unconditional samples (``condition="none"``) it compares against
the held-out items' digits, which the sampler never saw, so it sits near chance whatever the quality. The
label-free score beside it is ``digit_precision``: the share of samples that lie as close to some real
training digit as most real held-out digits do. With ``g`` a sample's 8x8 grid (the checker's), ``T`` the 1500
training grids and ``d(x) = min_{t in T} ||x - t||_2``, a sample counts when ``d(g) <= r``, where ``r`` is the
95th percentile of ``d`` over the 297 real held-out digits - so real held-out digits score 0.95
(``reference_precision``) by construction at 8 px (0.97 after upsampling to 16 px and back). It measures how
digit-like each sample is (precision, in the sense of Kynkaanniemi et al. 2019 with one fixed radius), not
whether all ten digits are drawn (recall).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lumina_core.data import Checker, ConditionParameter, LuminaDataset, check_condition
from lumina_core.registry import DATASETS

CAPTION = "a handwritten {}"
NUM_TRAIN = 1500  # of the 1797 images, in a fixed shuffled order; the rest are "val"/"test"
PRECISION_QUANTILE = 0.95  # digit_precision's radius: this share of real held-out digits fall within it


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) float in [0, 16] and (N,) labels, in a fixed shuffled order."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    return d.images[order].astype(np.float32), d.target[order].astype(np.int64)


def split_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _digits()
    if split == "train":
        return images[:NUM_TRAIN], labels[:NUM_TRAIN]
    if split in ("val", "test"):
        return images[NUM_TRAIN:], labels[NUM_TRAIN:]
    raise ValueError(f"split must be 'train', 'val' or 'test'; got {split!r}")


@functools.lru_cache(maxsize=1)
def digit_classifier():
    """An RBF SVM on the flattened 8x8 training digits (fitted once per process, about a second)."""
    from sklearn.svm import SVC

    x, y = split_arrays("train")
    return SVC(gamma=0.001, C=10.0).fit(x.reshape(len(x), -1), y)


def to_digit_grid(image: Tensor) -> np.ndarray:
    """(C, H, W) image in [-1, 1] (ink bright) -> (64,) on the dataset's 0..16 scale, by area averaging."""
    if image.dim() != 3:
        raise ValueError(f"expected a (C, H, W) image; got {tuple(image.shape)}")
    x = image.detach().float().cpu().clamp(-1, 1).mean(dim=0, keepdim=True)  # channels -> grey
    x = F.adaptive_avg_pool2d(x[None], (8, 8))[0, 0]
    return ((x + 1) * 8).numpy().reshape(-1)


@functools.lru_cache(maxsize=1)
def _nearest_real() -> tuple[np.ndarray, float]:
    """The (1500, 64) training grids and the radius ``r`` of ``digit_precision`` (see the module docstring)."""
    train = split_arrays("train")[0].reshape(-1, 64).astype(np.float64)
    held_out = split_arrays("val")[0].reshape(-1, 64).astype(np.float64)
    return train, float(np.percentile(_nn_distance(held_out, train), PRECISION_QUANTILE * 100))


def _nn_distance(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref``."""
    sq = (x * x).sum(1)[:, None] - 2 * x @ ref.T + (ref * ref).sum(1)[None]
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0))


def classify_digits(samples: Sequence[Tensor]) -> np.ndarray:
    """Predicted digit of each image."""
    feats = np.stack([to_digit_grid(x) for x in samples])
    return digit_classifier().predict(feats)


@DATASETS.register("digits")
class DigitsDataset(ConditionParameter, Checker, LuminaDataset):
    """Handwritten digits upsampled to ``size`` px (bilinear), in [-1, 1] with bright ink on black.

    Args:
        size: output side in pixels (8, 16, 32, ...).
        split: "train" (1500 images) or "val"/"test" (the other 297).
        condition: "class" (the digit), "text" ("a handwritten 7") or "none".
        channels: 1 (grey) or 3 (grey repeated).
    """

    modality = "image"
    #: ``score`` of a set is the mean of each sample's (the classifier reads each image alone)
    score_is_mean = True

    def __init__(
        self, size: int = 16, split: str = "train", condition: str = "class", channels: int = 1
    ) -> None:
        check_condition(condition, ("class", "text", "none"))
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {channels}")
        if size < 8:
            raise ValueError(f"size must be at least 8; got {size}")
        self.images, self.labels = split_arrays(split)
        self.size, self.split, self.condition, self.channels = int(size), split, condition, channels
        self.num_classes = 10

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        img = torch.from_numpy(self.images[index])[None, None] / 8.0 - 1.0  # (1, 1, 8, 8) in [-1, 1]
        if self.size != 8:
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        img = img[0].clamp(-1, 1).expand(self.channels, -1, -1).contiguous()
        label = int(self.labels[index])
        cond = {"class": label, "text": CAPTION.format(label), "none": None}[self.condition]
        return {"sample": img, "condition": cond, "meta": {"label": label, "index": int(index)}}

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        """``digit_acc``: how often the classifier reads the requested digit (``chance_digit`` = 0.1);
        ``digit_precision``: the label-free share of digit-like samples (``reference_precision`` = 0.95, real
        held-out digits; see the module docstring)."""
        if len(samples) != len(items) or not samples:
            raise ValueError(
                f"score needs equally many samples and items (> 0); got {len(samples)}, {len(items)}"
            )
        targets = np.asarray([int(it["meta"]["label"]) for it in items])
        pred = classify_digits(samples)
        train, radius = _nearest_real()
        grids = np.stack([to_digit_grid(x) for x in samples]).astype(np.float64)
        near = _nn_distance(grids, train) <= radius
        return {
            "digit_acc": float((pred == targets).mean()),
            "chance_digit": 0.1,
            "digit_precision": float(near.mean()),
            "reference_precision": PRECISION_QUANTILE,
        }

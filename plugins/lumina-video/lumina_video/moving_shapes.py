"""``moving_shapes``: procedural clips of one coloured shape moving left, right, up or down, with captions.

Item ``i`` of split ``k`` of a dataset with seed ``s`` is drawn from its own generator (seeded from
``(k, s, i)``), so an item is the same whatever order or worker reads it, and splits never share a stream.
Each clip shows a ``shape`` of one ``colour`` on black whose centre moves in a straight line, ``speed``
pixels per frame in ``direction``, and stays fully inside the frame. Pixels hold the fraction of their area
the shape covers (anti-aliasing), so sub-pixel motion is visible.

The caption ("a red circle moving right"), the class label and the exact per-frame centres are ground truth
in ``meta``; :meth:`MovingShapes.score` checks generated clips against them (see :mod:`.checker`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lumina_core.data import Checker, ConditionParameter, LuminaDataset
from lumina_core.registry import DATASETS

from .checker import COLOURS, DIRECTIONS, score_clips

SHAPES = ("circle", "square")
CONDITION_MODES = ("text", "class", "none")


def caption(colour: str, shape: str, direction: str) -> str:
    return f"a {colour} {shape} moving {direction}"


def index_seed(seed: int, index: int, split: str = "train") -> int:
    """A 63-bit seed for item ``index`` of split ``split`` of a dataset seeded ``seed`` (independent streams)."""
    digest = hashlib.blake2b(f"moving_shapes:{split}:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _overlap(lo: Tensor, hi: Tensor, n: int) -> Tensor:
    """(T, n): length of ``[lo_t, hi_t]`` inside each unit cell ``[k, k + 1)``, k = 0..n-1."""
    k = torch.arange(n, dtype=torch.float32)
    return (torch.minimum(hi[:, None], k + 1) - torch.maximum(lo[:, None], k)).clamp(min=0)


def render_clip(
    shape: str,
    rgb: Sequence[float],
    centres: Tensor,
    size: tuple[int, int],
    radius: float,
    supersample: int = 8,
) -> Tensor:
    """Draw ``shape`` of colour ``rgb`` (in [0, 1]) centred at ``centres`` (T, 2) = (x, y) pixels on black.

    Pixel ``(row j, col k)`` covers ``[k, k+1) x [j, j+1)``; its value is the fraction of it the shape
    covers, times the colour. A square (of the circle's area, half side ``h = r sqrt(pi) / 2``) is exact:
    the product of the row and column overlaps with ``[c - h, c + h]``. A circle of radius ``r`` counts
    which of the pixel's ``supersample^2`` sub-pixel centres fall inside. Returns (T, 3, H, W) in [-1, 1].
    """
    h, w = size
    centres = centres.float()
    if shape == "circle":
        ss = supersample
        ys = (torch.arange(h * ss, dtype=torch.float32) + 0.5) / ss  # (H*ss,)
        xs = (torch.arange(w * ss, dtype=torch.float32) + 0.5) / ss  # (W*ss,)
        dx = xs[None, None, :] - centres[:, 0, None, None]  # (T, 1, W*ss)
        dy = ys[None, :, None] - centres[:, 1, None, None]  # (T, H*ss, 1)
        inside = (dx**2 + dy**2 <= radius**2).float()
        cover = inside.reshape(-1, h, ss, w, ss).mean(dim=(2, 4))  # (T, H, W) in [0, 1]
    elif shape == "square":
        half = radius * (torch.pi**0.5) / 2
        cols = _overlap(centres[:, 0] - half, centres[:, 0] + half, w)  # (T, W)
        rows = _overlap(centres[:, 1] - half, centres[:, 1] + half, h)  # (T, H)
        cover = rows[:, :, None] * cols[:, None, :]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    colour = torch.tensor(rgb, dtype=torch.float32)[None, :, None, None]  # (1, 3, 1, 1)
    return cover[:, None] * colour * 2 - 1


def _as_list(value: int | Sequence[int], what: str) -> tuple[int, ...]:
    out = (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)
    if not out or min(out) <= 0:
        raise ValueError(f"{what} must be a positive int or a list of them; got {value!r}")
    return out


@DATASETS.register("moving_shapes")
class MovingShapes(ConditionParameter, Checker, LuminaDataset):
    """Procedural captioned clips with ground truth; a map-style dataset of ``num`` items.

    Args:
        num: number of items.
        frames: T, or a list of lengths to draw from per item (mixed-length batches).
        size: H = W in pixels, or a list of sizes to draw from per item.
        seed: dataset seed.
        split: "train", "val" or "test"; each split draws from its own streams, so the held-out items differ
            from the training items even with the same seed (the training API passes it).
        shapes, colours, directions: the vocabulary to draw from (uniformly); colours and directions are
            the attributes the checker scores.
        speed: ``(low, high)`` pixels per frame at 16 px, scaled with the size; lowered per item if the
            motion would not fit in the frame.
        radius: shape radius as a fraction of the frame size.
        condition: what ``item["condition"]`` is: the caption ("text"), the class id ("class") or None.
        supersample: sub-pixels per pixel side when drawing circles.
    """

    modality = "video"
    score_is_mean = True  #: ``score`` is the mean over clips of each clip's (``lumina eval`` grades each once)

    def __init__(
        self,
        num: int = 1024,
        frames: int | Sequence[int] = 8,
        size: int | Sequence[int] = 16,
        seed: int = 0,
        split: str = "train",
        shapes: Sequence[str] = SHAPES,
        colours: Sequence[str] = tuple(COLOURS),
        directions: Sequence[str] = tuple(DIRECTIONS),
        speed: Sequence[float] = (0.75, 1.25),
        radius: float = 0.18,
        condition: str = "text",
        supersample: int = 8,
    ) -> None:
        problems = []
        for what, chosen, known in (
            ("shapes", shapes, SHAPES),
            ("colours", colours, COLOURS),
            ("directions", directions, DIRECTIONS),
        ):
            unknown = [c for c in chosen if c not in known]
            if unknown or not chosen:
                problems.append(f"{what} must be a non-empty subset of {list(known)}; got {list(chosen)}")
        if condition not in CONDITION_MODES:
            problems.append(f"condition must be one of {CONDITION_MODES}; got {condition!r}")
        if len(speed) != 2 or not 0 < speed[0] <= speed[1]:
            problems.append(f"speed must be (low, high) with 0 < low <= high; got {speed!r}")
        if not 0 < radius < 0.5:
            problems.append(f"radius must be a fraction of the frame in (0, 0.5); got {radius}")
        if num <= 0:
            problems.append(f"num must be positive; got {num}")
        if problems:
            raise ValueError("invalid moving_shapes parameters: " + "; ".join(problems))
        self.num = int(num)
        self.frames = _as_list(frames, "frames")
        self.sizes = _as_list(size, "size")
        if min(self.frames) < 2:
            raise ValueError(f"clips need at least 2 frames to show motion; got frames={frames!r}")
        self.seed = int(seed)
        self.split = str(split)
        self.shapes, self.colours, self.directions = tuple(shapes), tuple(colours), tuple(directions)
        self.speed = (float(speed[0]), float(speed[1]))
        self.radius = float(radius)
        self.condition = condition
        self.supersample = int(supersample)

    # -- vocabulary --------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes are (colour, shape, direction) triples."""
        return len(self.colours) * len(self.shapes) * len(self.directions)

    def label(self, colour: str, shape: str, direction: str) -> int:
        c, s, d = self.colours.index(colour), self.shapes.index(shape), self.directions.index(direction)
        return (c * len(self.shapes) + s) * len(self.directions) + d

    # -- items -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict[str, Any]:
        spec = self.item_spec(index)
        s = spec["size"]
        clip = render_clip(
            spec["shape"],
            COLOURS[spec["colour"]],
            torch.tensor(spec["centres"]),
            (s, s),
            self.radius * s,
            self.supersample,
        )
        cond = {"text": spec["caption"], "class": spec["label"], "none": None}[self.condition]
        return {"sample": clip, "condition": cond, "meta": spec}

    def item_spec(self, index: int) -> dict[str, Any]:
        """Everything about item ``index`` except its pixels: attributes, caption, label, per-frame centres."""
        if not 0 <= index < self.num:
            raise IndexError(f"moving_shapes index {index} out of range [0, {self.num})")
        g = torch.Generator().manual_seed(index_seed(self.seed, index, self.split))

        def pick(options: Sequence[Any]) -> Any:
            return options[int(torch.randint(len(options), (1,), generator=g))]

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=g))

        colour, shape, direction = pick(self.colours), pick(self.shapes), pick(self.directions)
        t, s = pick(self.frames), pick(self.sizes)
        r = self.radius * s
        lo, hi = r, s - r  # centre range that keeps the shape inside the frame
        speed = min(uniform(*self.speed) * s / 16, (hi - lo) / (t - 1))
        travel = speed * (t - 1)
        ux, uy = DIRECTIONS[direction]
        along0 = uniform(lo, hi - travel) if (ux + uy) > 0 else uniform(lo + travel, hi)
        across = uniform(lo, hi)
        along = [along0 + (ux + uy) * speed * k for k in range(t)]
        centres = [[a, across] for a in along] if ux else [[across, a] for a in along]
        return {
            "index": index,
            "colour": colour,
            "shape": shape,
            "direction": direction,
            "speed": speed,
            "centres": centres,
            "caption": caption(colour, shape, direction),
            "label": self.label(colour, shape, direction),
            "frames": t,
            "size": s,
        }

    def conditions(self) -> list[Any]:
        """Every item's raw condition, in order (e.g. to cache text features)."""
        key = {"text": "caption", "class": "label"}.get(self.condition)
        return [self.item_spec(i)[key] if key else None for i in range(self.num)]

    # -- ground-truth checker ----------------------------------------------------------------------------
    def score(self, samples: Sequence[Tensor], items: Sequence[dict[str, Any]]) -> dict[str, float]:
        """Adherence of generated clips to the items that conditioned them; see :func:`.checker.score_clips`."""
        return score_clips(samples, [it["meta"] for it in items], self.colours, self.directions)

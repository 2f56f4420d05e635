"""A procedural dataset of coloured shapes with exact ground truth, and the analytic checker that grades
generated images against their captions.

Each item is one shape (circle, square or upward triangle) of one palette colour at one of five positions
(left, right, top, bottom, center) on a flat light-grey background, e.g. ``"a red circle on the left"``.
Everything is a pure function of ``(seed, split, index)``, so an item is the same on every machine.

Rendering is analytic with 4x4 supersampling: the pixel value is the area fraction ``a`` of the pixel
covered by the shape, ``pixel = a * colour + (1 - a) * background``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.data import Checker, ConditionParameter, LuminaDataset
from lumina_core.registry import DATASETS

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.16, 0.16),
    "green": (0.16, 0.66, 0.24),
    "blue": (0.16, 0.30, 0.86),
    "yellow": (0.96, 0.80, 0.12),
}
#: position name -> (row, column) direction of the offset from the image centre
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (0, -1),
    "right": (0, 1),
    "top": (-1, 0),
    "bottom": (1, 0),
    "center": (0, 0),
}
POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
#: shape radius as a fraction of the image side, per size word (None: no size attribute, jittered medium)
SIZES: dict[str, float] = {"small": 0.12, "large": 0.2}
MEDIUM_RADIUS = 0.18
OFFSET = 0.28  # centre-to-position distance as a fraction of the image side
BACKGROUND: tuple[float, float, float] = (0.94, 0.94, 0.94)
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class ShapeSpec:
    """Ground truth of one image: what is drawn and exactly where (pixels, row/column order)."""

    shape: str
    color: str
    position: str
    size: str | None
    cy: float
    cx: float
    radius: float

    def caption(self) -> str:
        size = f"{self.size} " if self.size else ""
        return f"a {size}{self.color} {self.shape} {POSITION_PHRASES[self.position]}"

    def meta(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "position": self.position,
            "size": self.size,
            "cy": self.cy,
            "cx": self.cx,
            "radius": self.radius,
        }


# -- rendering ---------------------------------------------------------------------------------------------
def shape_coverage(shape: str, cy: float, cx: float, r: float, h: int, w: int, ss: int = 4) -> np.ndarray:
    """(h, w) fraction of each pixel covered by the shape (pixel (i, j) spans [i, i+1) x [j, j+1)).

    circle: ``|p - c| <= r``; square: axis-aligned, half side ``r sqrt(pi) / 2`` (same area as the circle);
    triangle: upward equilateral with circumradius ``1.2 r``, its bounding box centred on the centre.
    """
    offs = (np.arange(ss) + 0.5) / ss
    ys = (np.arange(h)[:, None] + offs[None, :]).reshape(-1)  # (h*ss,)
    xs = (np.arange(w)[:, None] + offs[None, :]).reshape(-1)
    y, x = np.meshgrid(ys - cy, xs - cx, indexing="ij")
    if shape == "circle":
        inside = y**2 + x**2 <= r**2
    elif shape == "square":
        a = r * np.sqrt(np.pi) / 2
        inside = (np.abs(y) <= a) & (np.abs(x) <= a)
    elif shape == "triangle":
        big = 1.2 * r
        # vertices: apex (-3 big / 4, 0), base corners (3 big / 4, +-big sqrt(3) / 2); inside = above the base
        # and below both slanted edges.
        s3 = np.sqrt(3.0)
        inside = (y <= 0.75 * big) & (y + 0.75 * big >= s3 * np.abs(x))
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return inside.reshape(h, ss, w, ss).mean(axis=(1, 3))


def render(spec: ShapeSpec, size: int) -> Tensor:
    """(3, size, size) float image in [-1, 1]."""
    a = shape_coverage(spec.shape, spec.cy, spec.cx, spec.radius, size, size)[None]  # (1, H, W)
    col = np.asarray(COLORS[spec.color], dtype=np.float64)[:, None, None]
    bg = np.asarray(BACKGROUND, dtype=np.float64)[:, None, None]
    img = a * col + (1 - a) * bg
    return torch.from_numpy(img * 2 - 1).float()


# -- the dataset -------------------------------------------------------------------------------------------
@DATASETS.register("shapes")
class ShapesDataset(ConditionParameter, Checker, LuminaDataset):
    """Procedural coloured shapes with captions and ground truth.

    Args:
        size: image side in pixels (square images).
        length: number of items.
        split: "train", "val" or "test" (independent random streams of the same distribution).
        seed: base seed; item ``i`` is drawn from ``numpy.random.default_rng([seed, split, i])``.
        condition: "text" (caption), "class" (id of the shape x colour x position combination) or "none".
        sizes: add a size word ("small"/"large") to each caption; otherwise sizes jitter around medium.
        shapes, colors, positions: restrict the vocabulary (defaults: all).
        resolutions: render every drawing at each of these sides in pixels (any-resolution training; the same
            shape, colour and position, scaled with the canvas): item ``i`` is drawing ``i // n`` at side
            ``resolutions[i % n]``, ``n = len(resolutions)``, so the set has ``length * n`` items; None: every
            item at ``size``.
    """

    modality = "image"
    #: ``score`` of a set is the mean of each sample's (every shipped item set agrees on carrying a size or not)
    score_is_mean = True

    def __init__(
        self,
        size: int = 32,
        length: int = 10000,
        split: str = "train",
        seed: int = 0,
        condition: str = "text",
        sizes: bool = False,
        shapes: Sequence[str] | None = None,
        colors: Sequence[str] | None = None,
        positions: Sequence[str] | None = None,
        resolutions: Sequence[int] | None = None,
    ) -> None:
        problems = []
        if split not in SPLIT_STREAMS:
            problems.append(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
        if condition not in ("text", "class", "none"):
            problems.append(f"condition must be 'text', 'class' or 'none', got {condition!r}")
        if size < 12:
            problems.append(f"size must be at least 12 pixels, got {size}")
        if length < 1:
            problems.append(f"length must be positive, got {length}")
        sides = [int(r) for r in resolutions] if resolutions else [int(size)]
        if any(r < 12 for r in sides):
            problems.append(f"resolutions must be at least 12 pixels, got {list(resolutions or [])}")
        self.shapes = tuple(shapes or SHAPES)
        self.colors = tuple(colors or COLORS)
        self.positions = tuple(positions or POSITIONS)
        for name, chosen, allowed in (
            ("shapes", self.shapes, SHAPES),
            ("colors", self.colors, COLORS),
            ("positions", self.positions, POSITIONS),
        ):
            bad = [c for c in chosen if c not in allowed]
            if bad:
                problems.append(f"unknown {name} {bad}; expected a subset of {list(allowed)}")
        if problems:
            raise ValueError("invalid shapes dataset: " + "; ".join(problems))
        self.size, self.length, self.split, self.seed = int(size), int(length), split, int(seed)
        self.condition, self.sizes = condition, bool(sizes)
        self.resolutions = sides

    def __len__(self) -> int:
        return self.length * len(self.resolutions)

    @property
    def num_classes(self) -> int:
        """Number of shape x colour x position combinations (class ids 0 .. num_classes - 1)."""
        return len(self.shapes) * len(self.colors) * len(self.positions)

    def class_id(self, shape: str, color: str, position: str) -> int:
        return (self.shapes.index(shape) * len(self.colors) + self.colors.index(color)) * len(
            self.positions
        ) + self.positions.index(position)

    def class_attributes(self, class_id: int) -> tuple[str, str, str]:
        """Inverse of :meth:`class_id`: (shape, colour, position)."""
        if not 0 <= class_id < self.num_classes:
            raise ValueError(f"class id must be in [0, {self.num_classes}); got {class_id}")
        rest, p = divmod(int(class_id), len(self.positions))
        s, c = divmod(rest, len(self.colors))
        return self.shapes[s], self.colors[c], self.positions[p]

    def spec(self, index: int, side: int | None = None) -> ShapeSpec:
        """The ground truth of drawing ``index`` (deterministic) on a canvas of ``side`` px (default ``size``;
        every coordinate scales with the side)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a shapes dataset of length {self.length}")
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index])
        shape = self.shapes[rng.integers(len(self.shapes))]
        color = self.colors[rng.integers(len(self.colors))]
        position = self.positions[rng.integers(len(self.positions))]
        s = self.size if side is None else int(side)
        if self.sizes:
            size_word = ("small", "large")[rng.integers(2)]
            radius = SIZES[size_word] * s * rng.uniform(0.95, 1.05)
        else:
            size_word = None
            radius = MEDIUM_RADIUS * s * rng.uniform(0.9, 1.1)
        dy, dx = POSITIONS[position]
        jitter = rng.uniform(-0.03, 0.03, size=2) * s
        cy = s / 2 + dy * OFFSET * s + jitter[0]
        cx = s / 2 + dx * OFFSET * s + jitter[1]
        return ShapeSpec(shape, color, position, size_word, float(cy), float(cx), float(radius))

    def condition_of(self, spec: ShapeSpec) -> str | int | None:
        if self.condition == "text":
            return spec.caption()
        if self.condition == "class":
            return self.class_id(spec.shape, spec.color, spec.position)
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        drawing, which = divmod(int(index), len(self.resolutions))
        side = self.resolutions[which]
        spec = self.spec(drawing, side)
        meta = spec.meta()
        meta["caption"] = spec.caption()
        return {"sample": render(spec, side), "condition": self.condition_of(spec), "meta": meta}

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        """Prompt adherence of generated ``samples`` to the attributes of ``items`` (see :func:`score_shapes`)."""
        targets = []
        for it in items:
            meta = dict(it.get("meta") or {})
            if "shape" not in meta:
                cond = it.get("condition")
                if isinstance(cond, str):
                    meta = parse_caption(cond)
                elif cond is not None:
                    meta = dict(
                        zip(("shape", "color", "position"), self.class_attributes(int(cond)), strict=True)
                    )
            targets.append(meta)
        return score_shapes(
            samples, targets, shapes=self.shapes, colors=self.colors, positions=self.positions
        )


# -- captions ----------------------------------------------------------------------------------------------
_CAPTION = re.compile(
    r"(?:(?P<size>small|large)\s+)?(?P<color>"
    + "|".join(COLORS)
    + r")\s+(?P<shape>"
    + "|".join(SHAPES)
    + r")\s+(?:on|at|in)\s+the\s+(?P<position>"
    + "|".join(POSITIONS)
    + r")"
)


def parse_caption(text: str) -> dict[str, str | None]:
    """Attributes named by a caption such as ``"a small red circle on the left"``."""
    m = _CAPTION.search(text.lower())
    if m is None:
        raise ValueError(f"cannot read shape, colour and position from caption {text!r}")
    return {"shape": m["shape"], "color": m["color"], "position": m["position"], "size": m["size"]}


# -- the checker -------------------------------------------------------------------------------------------
#: half the longer bounding-box side of each rendered shape, in units of its radius r
HALF_EXTENT = {"circle": 1.0, "square": float(np.sqrt(np.pi) / 2), "triangle": 1.2 * float(np.sqrt(3)) / 2}
FOREGROUND_DISTANCE = 0.25  # RGB distance (in [0, 1] units) from the background that counts as foreground


def _templates(h0: int, w0: int, h1: int, w1: int, h: int, w: int) -> dict[str, np.ndarray]:
    """Binary masks of each shape fitted to the bounding box rows [h0, h1), columns [w0, w1)."""
    cy, cx = (h0 + h1) / 2, (w0 + w1) / 2
    bh, bw = h1 - h0, w1 - w0
    yy, xx = np.meshgrid(np.arange(h) + 0.5 - cy, np.arange(w) + 0.5 - cx, indexing="ij")
    ellipse = (yy / (bh / 2)) ** 2 + (xx / (bw / 2)) ** 2 <= 1.0
    box = (np.abs(yy) <= bh / 2) & (np.abs(xx) <= bw / 2)
    # upward triangle inscribed in the box: apex at the top middle, base along the bottom edge
    triangle = box & (np.abs(xx) <= (yy + bh / 2) / bh * (bw / 2))
    return {"circle": ellipse, "square": box, "triangle": triangle}


def describe(
    image: Tensor,
    colors: Sequence[str] = tuple(COLORS),
    shapes: Sequence[str] = SHAPES,
    positions: Sequence[str] = tuple(POSITIONS),
) -> dict[str, Any] | None:
    """What an image shows: the largest non-background blob's shape, colour and position (None: nothing).

    1. foreground = pixels farther than ``FOREGROUND_DISTANCE`` from the known background colour;
    2. keep the largest 8-connected component;
    3. colour = palette colour nearest to the blob's median RGB;
    4. shape = the template (ellipse, box, upward triangle) fitted to the blob's bounding box with the
       highest IoU against the blob;
    5. position = the centroid's offset from the image centre: "center" inside half the nominal offset,
       else the dominant direction; size = radius from the longer bounding-box side, nearer to small or large.
    """
    from scipy import ndimage

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"the shapes checker expects (3, H, W) images; got {tuple(image.shape)}")
    rgb = ((image.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()  # (H, W, 3)
    h, w = rgb.shape[:2]
    dist = np.linalg.norm(rgb - np.asarray(BACKGROUND), axis=-1)
    labels, n = ndimage.label(dist > FOREGROUND_DISTANCE, structure=np.ones((3, 3)))
    if n == 0:
        return None
    areas = ndimage.sum_labels(np.ones_like(dist), labels, index=np.arange(1, n + 1))
    blob = labels == (int(np.argmax(areas)) + 1)
    area = int(blob.sum())
    if area < max(4, (h * w) // 256):
        return None
    median = np.median(rgb[blob], axis=0)
    color = min(colors, key=lambda c: float(np.linalg.norm(median - np.asarray(COLORS[c]))))
    rows, cols = np.nonzero(blob)
    h0, h1, w0, w1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    templates = _templates(h0, w0, h1, w1, h, w)
    ious = {s: float((blob & templates[s]).sum() / (blob | templates[s]).sum()) for s in shapes}
    shape = max(ious, key=ious.get)
    cy, cx = rows.mean() + 0.5, cols.mean() + 0.5
    dy, dx = (cy - h / 2) / h, (cx - w / 2) / w
    if max(abs(dy), abs(dx)) < OFFSET / 2:
        position = "center"
    elif abs(dx) >= abs(dy):
        position = "right" if dx > 0 else "left"
    else:
        position = "bottom" if dy > 0 else "top"
    if position not in positions:  # a restricted vocabulary: nearest allowed direction
        position = min(
            positions,
            key=lambda p: (POSITIONS[p][0] * OFFSET - dy) ** 2 + (POSITIONS[p][1] * OFFSET - dx) ** 2,
        )
    # the shape's radius from its longer bounding-box side (robust to clipping at one image border)
    radius = max(h1 - h0, w1 - w0) / 2 / HALF_EXTENT[shape] / max(h, w)
    size = "small" if radius < (SIZES["small"] + SIZES["large"]) / 2 else "large"
    return {
        "shape": shape,
        "color": color,
        "position": position,
        "size": size,
        "area": area,
        "ious": ious,
        "centroid": (float(cy), float(cx)),
    }


def score_shapes(
    samples: Sequence[Tensor],
    targets: Sequence[dict[str, Any]],
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str] = tuple(COLORS),
    positions: Sequence[str] = tuple(POSITIONS),
) -> dict[str, float]:
    """Per-attribute accuracy and all-attributes ``adherence`` of images against target attributes.

    An image with no detectable blob fails every attribute. ``chance_*`` are the accuracies of guessing
    uniformly over the vocabulary; ``chance_adherence`` their product.
    """
    if len(samples) != len(targets):
        raise ValueError(f"got {len(samples)} samples but {len(targets)} targets")
    if len(samples) == 0:
        raise ValueError("score needs at least one sample")
    use_size = all(t.get("size") for t in targets)
    attrs = ["shape", "color", "position"] + (["size"] if use_size else [])
    hits = {a: 0 for a in attrs}
    found = all_ok = 0
    for x, target in zip(samples, targets, strict=True):
        seen = describe(x, colors=colors, shapes=shapes, positions=positions)
        if seen is None:
            continue
        found += 1
        ok = [seen[a] == target[a] for a in attrs]
        for a, good in zip(attrs, ok, strict=True):
            hits[a] += int(good)
        all_ok += int(all(ok))
    n = len(samples)
    out = {f"{a}_acc": hits[a] / n for a in attrs}
    chance = {"shape": 1 / len(shapes), "color": 1 / len(colors), "position": 1 / len(positions), "size": 0.5}
    out.update({f"chance_{a}": chance[a] for a in attrs})
    out["adherence"] = all_ok / n
    out["chance_adherence"] = float(np.prod([chance[a] for a in attrs]))
    out["found"] = found / n
    return out

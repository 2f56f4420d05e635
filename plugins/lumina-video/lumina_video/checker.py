"""An analytic checker for clips of one coloured blob moving on black: which colour, which direction.

For each frame the blob is the set of pixels whose brightness ``b = max_c x_c`` (x in [0, 1]) exceeds a
threshold, with their dimmer neighbours (the anti-aliased rim); its centroid is the ``b``-weighted mean pixel centre. The motion is the least-squares slope of the
centroid over the frame index,

    v_x = sum_t (t - t_mean)(x_t - x_mean) / sum_t (t - t_mean)^2     (and v_y alike),

and the direction is the dominant axis and its sign (image y grows downwards, so v_y > 0 is "down"); a
slope under ``min_speed`` pixels per frame is "static". The colour is the ``b``-weighted mean RGB of the blob
pixels, divided by its largest channel (anti-aliased edges are darker, not a different hue) and named by
the nearest palette entry. Nothing here is learned, so a generator cannot flatter it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: palette: name -> RGB in [0, 1]; every entry has a channel at 1 so brightness-normalised colours compare
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
}
#: direction -> unit motion (x, y) in image coordinates (y down)
DIRECTIONS: dict[str, tuple[int, int]] = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


@dataclass
class ClipReading:
    """What the checker reads from one clip."""

    centroids: Tensor  # (T, 2) (x, y) per frame, NaN where no blob was found
    velocity: tuple[float, float] | None  # least-squares (v_x, v_y) px/frame; None with < 2 blob frames
    direction: str  # a DIRECTIONS key, "static" or "none" (no blob)
    colour: str  # a palette name, or "none"


def blob_centroids(
    clip: Tensor, threshold: float = 0.5, floor: float = 0.05
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-frame blob centroids (T, 2), blob mask (T, H, W) and brightness (T, H, W) of a (T, 3, H, W) clip.

    The blob is every pixel brighter than ``threshold`` plus its 8 neighbours that are brighter than
    ``floor`` (the anti-aliased rim), so the centroid of a drawn shape is exact to a fraction of a pixel.
    """
    if clip.dim() != 4 or clip.shape[1] != 3:
        raise ValueError(f"the checker reads RGB clips (T, 3, H, W) in [-1, 1]; got {tuple(clip.shape)}")
    x = (clip.detach().float().cpu().clamp(-1, 1) + 1) / 2
    bright = x.amax(dim=1)  # (T, H, W)
    core = (bright > threshold).float()[:, None]  # (T, 1, H, W)
    near = torch.nn.functional.max_pool2d(core, kernel_size=3, stride=1, padding=1)[:, 0] > 0
    mask = near & (bright > floor)
    weight = bright * mask
    total = weight.sum(dim=(1, 2))  # (T,)
    h, w = bright.shape[1:]
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    cx = (weight.sum(dim=1) * xs).sum(dim=1) / total
    cy = (weight.sum(dim=2) * ys).sum(dim=1) / total
    cent = torch.stack([cx, cy], dim=1)
    cent[total <= 0] = float("nan")
    return cent, mask, bright


def fit_velocity(centroids: Tensor) -> tuple[float, float] | None:
    """Least-squares slope of (x, y) against the frame index over frames with a centroid."""
    t = torch.arange(centroids.shape[0], dtype=torch.float32)
    ok = ~torch.isnan(centroids).any(dim=1)
    if int(ok.sum()) < 2:
        return None
    t, c = t[ok], centroids[ok]
    tc = t - t.mean()
    slope = (tc[:, None] * (c - c.mean(dim=0))).sum(dim=0) / (tc**2).sum()
    return float(slope[0]), float(slope[1])


def direction_name(velocity: tuple[float, float] | None, min_speed: float) -> str:
    if velocity is None:
        return "none"
    vx, vy = velocity
    if max(abs(vx), abs(vy)) < min_speed:
        return "static"
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


def colour_name(
    clip: Tensor, mask: Tensor, bright: Tensor, palette: dict[str, tuple[float, ...]] = COLOURS
) -> str:
    """Nearest palette colour to the brightness-normalised mean blob colour; "none" without a blob."""
    if not bool(mask.any()):
        return "none"
    x = (clip.detach().float().cpu().clamp(-1, 1) + 1) / 2  # (T, 3, H, W)
    weight = (bright * mask)[:, None]  # (T, 1, H, W)
    rgb = (x * weight).sum(dim=(0, 2, 3)) / weight.sum()
    rgb = rgb / rgb.max().clamp_min(1e-6)
    names = list(palette)
    refs = torch.tensor([palette[n] for n in names], dtype=torch.float32)
    return names[int(((refs - rgb) ** 2).sum(dim=1).argmin())]


def read_clip(clip: Tensor, threshold: float = 0.5, min_speed: float | None = None) -> ClipReading:
    """Centroids, velocity, direction and colour of the blob in one clip (T, 3, H, W) in [-1, 1].

    ``min_speed`` defaults to 0.2 px/frame at 16 px, scaled with the frame size.
    """
    cent, mask, bright = blob_centroids(clip, threshold)
    if min_speed is None:
        min_speed = 0.2 * max(clip.shape[-2:]) / 16
    vel = fit_velocity(cent)
    return ClipReading(cent, vel, direction_name(vel, min_speed), colour_name(clip, mask, bright))


def score_clips(
    samples: Sequence[Tensor],
    expected: Sequence[dict[str, Any]],
    colours: Sequence[str] = tuple(COLOURS),
    directions: Sequence[str] = tuple(DIRECTIONS),
) -> dict[str, float]:
    """Accuracy of each attribute and overall adherence (both right), with chance levels.

    ``expected[i]`` holds the ground truth ``{"colour": ..., "direction": ...}`` for ``samples[i]``.
    Chance is what a generator that ignores the condition would score when attributes are drawn uniformly
    from ``colours`` and ``directions``: ``1/len(colours)``, ``1/len(directions)`` and their product.
    """
    if len(samples) != len(expected) or not samples:
        raise ValueError(
            f"need the same non-zero number of samples and items; got {len(samples)} and {len(expected)}"
        )
    dir_ok = col_ok = both_ok = found = 0
    for clip, truth in zip(samples, expected, strict=True):
        reading = read_clip(clip)
        d = reading.direction == truth["direction"]
        c = reading.colour == truth["colour"]
        dir_ok += d
        col_ok += c
        both_ok += d and c
        found += reading.colour != "none"
    n = len(samples)
    return {
        "direction_acc": dir_ok / n,
        "colour_acc": col_ok / n,
        "adherence": both_ok / n,
        "direction_chance": 1 / len(directions),
        "colour_chance": 1 / len(colours),
        "adherence_chance": 1 / (len(directions) * len(colours)),
        "blob_found": found / n,
    }

"""Previews of multi-view samples: a captioned PNG grid (one row of views per sample) and turntable GIFs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def to_uint8(views: Tensor) -> np.ndarray:
    """(V, C, H, W) in [-1, 1] -> (V, H, W, 3) uint8 (grey views are repeated to RGB)."""
    x = ((views.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x[:, :3].permute(0, 2, 3, 1).numpy()


def view_frames(views: Tensor, scale: int = 2) -> list[Image.Image]:
    """The views as PIL images, upscaled ``scale`` times (nearest) so small renders stay readable."""
    frames = []
    for arr in to_uint8(views):
        im = Image.fromarray(arr)
        frames.append(im.resize((im.width * scale, im.height * scale), Image.NEAREST))
    return frames


def write_views_previews(
    samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str, fps: float = 4.0
) -> list[Path]:
    """``<stem>.png``: rows of views with the condition written above each row; ``<stem>_<i>.gif``: each
    sample's views in orbit order, looping (a turntable when the views go round the object)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(samples) == 0:
        raise ValueError("write_preview needs at least one sample")
    rows = [view_frames(s) for s in samples]
    label_h, pad = 14, 2
    cell_w = max(f.width for r in rows for f in r)
    cell_h = max(f.height for r in rows for f in r)
    ncol = max(len(r) for r in rows)
    grid = Image.new(
        "RGB", (ncol * (cell_w + pad) + pad, len(rows) * (cell_h + label_h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(grid)
    for i, frames in enumerate(rows):
        y = pad + i * (cell_h + label_h + pad)
        cond = conditions[i] if i < len(conditions) else None
        draw.text((pad, y), "" if cond is None else str(cond)[:80], fill=(0, 0, 0))
        for j, f in enumerate(frames):
            grid.paste(f, (pad + j * (cell_w + pad), y + label_h))
    paths = [out / f"{stem}.png"]
    grid.save(paths[0])
    for i, frames in enumerate(rows):
        p = out / f"{stem}_{i}.gif"
        frames[0].save(p, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        paths.append(p)
    return paths

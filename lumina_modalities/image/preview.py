"""Image previews: a PNG grid with each prompt written under its image, plus one PNG per sample."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def to_uint8(x: Tensor) -> np.ndarray:
    """(C, H, W) float image in [-1, 1] (C = 1 or 3) -> (H, W, 3) uint8, clamped."""
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1 or 3, H, W); got {tuple(x.shape)}")
    x = x.detach().float().cpu().clamp(-1, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    arr = ((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr)


def caption_text(condition: Any) -> str:
    """How a condition reads under its image (captions verbatim, class ids as ``class 7``)."""
    if condition is None:
        return ""
    if isinstance(condition, str):
        return condition
    if isinstance(condition, (int, np.integer)) or (isinstance(condition, Tensor) and condition.numel() == 1):
        return f"class {int(condition)}"
    return str(condition)


def make_grid(
    samples: Sequence[Tensor],
    conditions: Sequence[Any] | None = None,
    cell: int = 128,
    columns: int | None = None,
    text_lines: int = 2,
):
    """A PIL image: samples upscaled to ``cell`` px tall (nearest), captions under each, on white."""
    from PIL import Image, ImageDraw, ImageFont

    if len(samples) == 0:
        raise ValueError("make_grid needs at least one sample")
    conditions = list(conditions) if conditions is not None else [None] * len(samples)
    if len(conditions) != len(samples):
        raise ValueError(f"got {len(samples)} samples but {len(conditions)} conditions")
    font = ImageFont.load_default()
    tiles = []
    for x in samples:
        img = Image.fromarray(to_uint8(x))
        scale = cell / img.height
        tiles.append(img.resize((max(1, round(img.width * scale)), cell), Image.NEAREST))
    cell_w = max(max(t.width for t in tiles), cell)
    chars = max(8, cell_w // 6)  # the default bitmap font is about 6 px per character
    line_h = 12
    text_h = line_h * text_lines + 6 if any(caption_text(c) for c in conditions) else 0
    cols = columns or math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / cols)
    pad = 4
    grid = Image.new("RGB", (cols * (cell_w + pad) + pad, rows * (cell + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for k, (tile, cond) in enumerate(zip(tiles, conditions, strict=True)):
        r, c = divmod(k, cols)
        x0, y0 = pad + c * (cell_w + pad), pad + r * (cell + text_h + pad)
        grid.paste(tile, (x0 + (cell_w - tile.width) // 2, y0))
        lines = textwrap.wrap(caption_text(cond), chars)[:text_lines]
        for li, line in enumerate(lines):
            draw.text((x0 + 2, y0 + cell + 3 + li * line_h), line, fill="black", font=font)
    return grid


def write_image_preview(
    samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str, cell: int = 128
) -> list[Path]:
    """Write ``<stem>.png`` (grid with prompts) and ``<stem>_NNN.png`` (each sample at its own size)."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid_path = out / f"{stem}.png"
    make_grid(samples, conditions, cell=cell).save(grid_path)
    paths = [grid_path]
    for i, x in enumerate(samples):
        p = out / f"{stem}_{i:03d}.png"
        Image.fromarray(to_uint8(x)).save(p)
        paths.append(p)
    return paths


def preview_to_tensorboard(writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
    """Log samples as an image batch (sizes may differ: each is logged under ``tag/i`` then)."""
    imgs = [torch.from_numpy(to_uint8(x)).permute(2, 0, 1) for x in samples]
    if len({tuple(i.shape) for i in imgs}) == 1:
        writer.add_images(tag, torch.stack(imgs), step, dataformats="NCHW")
    else:
        for i, img in enumerate(imgs):
            writer.add_image(f"{tag}/{i}", img, step, dataformats="CHW")

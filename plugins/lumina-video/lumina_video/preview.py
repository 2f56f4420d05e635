"""Previews of clips: one animated GIF per sample and one PNG filmstrip (a row of frames per sample, captioned).

Clips are (T, C, H, W) in [-1, 1] with C = 1 (grey) or 3 (RGB); values outside [-1, 1] are clipped.
Tiny clips (16 x 16) are enlarged with nearest-neighbour so a person can see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

#: frames are enlarged (nearest neighbour) until their shorter side is at least this many pixels
MIN_PREVIEW_SIDE = 64
CAPTION_HEIGHT = 14
GAP = 2


def clip_to_frames(clip: Tensor, min_side: int = MIN_PREVIEW_SIDE) -> list[Image.Image]:
    """(T, C, H, W) in [-1, 1] -> T PIL images (mode "RGB" or "L"), enlarged to ``min_side``."""
    if clip.dim() != 4 or clip.shape[1] not in (1, 3):
        raise ValueError(f"a preview needs a clip (T, C, H, W) with C in (1, 3); got {tuple(clip.shape)}")
    pixels = ((clip.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()  # (T, C, H, W)
    pixels = pixels.permute(0, 2, 3, 1).numpy()  # (T, H, W, C)
    h, w = pixels.shape[1:3]
    scale = max(1, -(-min_side // min(h, w)))  # ceil
    frames = []
    for frame in pixels:
        img = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
        frames.append(img.resize((w * scale, h * scale), Image.NEAREST) if scale > 1 else img)
    return frames


def caption_text(condition: Any) -> str:
    """What to print above a sample: the caption, ``class N``, or ``(unconditional)``."""
    if condition is None or condition == "":
        return "(unconditional)"
    if isinstance(condition, str):
        return condition
    return f"class {condition}"


def write_gif(clip: Tensor, path: str | Path, fps: float = 4.0) -> Path:
    """An animated GIF that loops forever, ``fps`` frames per second."""
    frames = [f.convert("RGB") for f in clip_to_frames(clip)]
    path = Path(path)
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)), loop=0, disposal=1
    )
    return path


def write_filmstrip(clips: Sequence[Tensor], conditions: Sequence[Any], path: str | Path) -> Path:
    """A PNG with one row per clip: its caption, then its frames left to right."""
    if len(clips) != len(conditions):
        raise ValueError(
            f"need one condition per clip; got {len(clips)} clips and {len(conditions)} conditions"
        )
    rows = [[f.convert("RGB") for f in clip_to_frames(c)] for c in clips]
    font = ImageFont.load_default()
    width = max(sum(f.width + GAP for f in row) for row in rows) + GAP
    height = sum(CAPTION_HEIGHT + max(f.height for f in row) + GAP for row in rows) + GAP
    sheet = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    y = GAP
    for row, cond in zip(rows, conditions, strict=True):
        draw.text((GAP, y), caption_text(cond), fill=(235, 235, 235), font=font)
        y += CAPTION_HEIGHT
        x = GAP
        for frame in row:
            sheet.paste(frame, (x, y))
            x += frame.width + GAP
        y += max(f.height for f in row) + GAP
    path = Path(path)
    sheet.save(path)
    return path


def write_clip_previews(
    clips: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str, fps: float = 4.0
) -> list[Path]:
    """``{stem}_{i:02d}.gif`` per clip and ``{stem}_filmstrip.png`` for all; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(clips) == 0:
        raise ValueError("write_clip_previews needs at least one clip")
    paths = [write_gif(c, out / f"{stem}_{i:02d}.gif", fps=fps) for i, c in enumerate(clips)]
    paths.append(write_filmstrip(clips, conditions, out / f"{stem}_filmstrip.png"))
    return paths

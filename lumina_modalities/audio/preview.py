"""Audio previews: one WAV per sample plus a spectrogram PNG (log-mel, low frequencies at the bottom).

The PNG is drawn with Pillow alone: log-mel values are mapped linearly from ``[floor, max]`` onto a
black-purple-orange-yellow ramp, each frame widened to a few pixels, with the caption written underneath.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .io import save_audio

# (position, RGB) anchors of a perceptually ordered dark-to-bright ramp
_RAMP = np.array(
    [[0.0, 0, 0, 4], [0.25, 80, 18, 123], [0.5, 182, 54, 121], [0.75, 251, 136, 97], [1.0, 252, 253, 191]]
)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] ``(H, W)`` -> ``(H, W, 3)`` uint8 through the ramp."""
    v = np.clip(values, 0.0, 1.0)
    rgb = [np.interp(v, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def spectrogram_image(logmel: Tensor, caption: str = "", px_per_frame: int = 3, px_per_bin: int = 2,
                      dynamic_range: float = 9.0):
    """A PIL image of a natural-log mel spectrogram ``(F, N)`` with ``caption`` underneath.

    Shows the top ``dynamic_range`` nats (9 nats, about 78 dB) below the loudest bin.
    """
    from PIL import Image, ImageDraw, ImageFont

    if logmel.dim() != 2:
        raise ValueError(f"spectrogram_image expects a (mels, frames) log-mel; got {tuple(logmel.shape)}")
    m = logmel.detach().float().cpu().numpy()
    top = float(m.max())
    img = colorize((m - (top - dynamic_range)) / dynamic_range)[::-1]  # low frequencies at the bottom
    pic = Image.fromarray(np.ascontiguousarray(img)).resize(
        (img.shape[1] * px_per_frame, img.shape[0] * px_per_bin), Image.NEAREST
    )
    lines = textwrap.wrap(caption, max(10, pic.width // 6))[:3] if caption else []
    canvas = Image.new("RGB", (pic.width, pic.height + 12 * len(lines) + (4 if lines else 0)), "white")
    canvas.paste(pic, (0, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for k, line in enumerate(lines):
        draw.text((2, pic.height + 2 + 12 * k), line, fill="black", font=font)
    return canvas


def write_audio_preview(
    waveforms: Sequence[Tensor], logmels: Sequence[Tensor], conditions: Sequence[Any] | None,
    out_dir: str | Path, stem: str, sample_rate: int,
) -> list[Path]:
    """``{stem}_{i}.wav`` and ``{stem}_{i}.png`` per sample, plus ``{stem}.txt`` with the captions."""
    if len(waveforms) != len(logmels):
        raise ValueError(f"got {len(waveforms)} waveforms but {len(logmels)} spectrograms")
    conditions = list(conditions) if conditions is not None else [None] * len(waveforms)
    if len(conditions) != len(waveforms):
        raise ValueError(f"got {len(waveforms)} samples but {len(conditions)} conditions")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, (wav, mel, cond) in enumerate(zip(waveforms, logmels, conditions, strict=True)):
        caption = "" if cond is None else str(cond)
        paths.append(save_audio(out / f"{stem}_{i}.wav", wav, sample_rate))
        png = out / f"{stem}_{i}.png"
        spectrogram_image(mel, caption).save(png)
        paths.append(png)
    txt = out / f"{stem}.txt"
    txt.write_text("".join(f"{i}\t{'' if c is None else c}\n" for i, c in enumerate(conditions)))
    paths.append(txt)
    return paths


def audio_to_tensorboard(writer: Any, waveforms: Sequence[Tensor], logmels: Sequence[Tensor], step: int,
                         tag: str, sample_rate: int) -> None:
    """``add_audio`` for each clip and ``add_image`` (HWC) for its spectrogram."""
    for i, (wav, mel) in enumerate(zip(waveforms, logmels, strict=True)):
        w = wav.detach().float().cpu().reshape(1, -1).clamp(-1, 1)
        writer.add_audio(f"{tag}/audio_{i}", w, step, sample_rate=sample_rate)
        img = np.asarray(spectrogram_image(mel))
        writer.add_image(f"{tag}/spectrogram_{i}", torch.from_numpy(img.copy()), step, dataformats="HWC")

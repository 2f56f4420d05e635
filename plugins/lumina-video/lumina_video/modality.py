"""The "video" modality: short clips as spatio-temporal patch tokens on a 3-D (t, h, w) RoPE grid.

Samples are clips ``(T, C, H, W)`` in [-1, 1]. Tokens are ``pt x ph x pw`` boxes (see :mod:`.patches`),
positions are ``(t, h, w)`` in patch units, so frames sit on the first RoPE axis. The head dimension ``d``
is split ``d/4 : 3d/8 : 3d/8`` across (t, h, w) (``axis_split=(2, 3, 3)``, SPEC section 3), each axis owning
a contiguous slice ("blocked" layout).

Clips of different lengths and sizes share a batch: each is patchified on its own grid and right-padded
(``mask`` False on padding). Generating more frames than were trained on needs nothing special here:
``layout([(T_long, C, H, W)])`` gives positions ``t = 0 .. T_long/pt - 1``, and the trunk's RoPE scaling
(``AdapterSpec.train_extent`` vs the batch's extent) handles the longer axis when sampling asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import MODALITIES
from lumina_core.tokens import TokenBatch

from .patches import grid_positions, grid_size, patchify, unpatchify
from .preview import clip_to_frames, write_clip_previews


def _triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    out = tuple(int(v) for v in value)
    if len(out) != 3 or min(out) <= 0:
        raise ValueError(f"{what} must be a positive int or three positive ints (t, h, w); got {value!r}")
    return out  # type: ignore[return-value]


@MODALITIES.register("video")
class VideoPlugin(ModalityPlugin):
    """Text-, class- or un-conditioned generation of short clips (T, C, H, W) in [-1, 1].

    Args:
        patch: ``(pt, ph, pw)`` frames x rows x columns per token, e.g. ``(1, 4, 4)`` or ``(2, 4, 4)``.
        channels: C, 3 for RGB or 1 for grey.
        frames: T of the default (training) clip.
        size: H = W of the default clip, or ``(H, W)``.
        axis_split: share of each head's rotary dimension per axis (t, h, w).
        rope_theta: RoPE base.
        fps: frame rate of the GIF previews.
    """

    name = "video"
    api_version = "1.0"  # the core API this plugin was written for (not the installed core's version)
    conditions = frozenset({"text", "class", "none"})
    preview_formats = ("gif", "png")
    default_recipe = "recipes/moving_shapes_tiny.yaml"

    def __init__(
        self,
        patch: int | Sequence[int] = (1, 4, 4),
        channels: int = 3,
        frames: int = 8,
        size: int | Sequence[int] = 16,
        axis_split: Sequence[int] = (2, 3, 3),
        rope_theta: float = 10000.0,
        fps: float = 4.0,
    ) -> None:
        self.patch = _triple(patch, "patch")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
        hw = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(hw) != 2:
            raise ValueError(f"size must be an int or (H, W); got {size!r}")
        self.channels = channels
        self.frames = int(frames)
        self.size = hw
        self.axis_split = tuple(int(a) for a in axis_split)
        self.rope_theta = float(rope_theta)
        self.fps = float(fps)
        grid_size(self.default_shape(), self.patch)  # fail early if the default clip does not tile
        super().__init__(
            patch=list(self.patch),
            channels=channels,
            frames=self.frames,
            size=list(hw),
            axis_split=list(self.axis_split),
            rope_theta=self.rope_theta,
            fps=self.fps,
        )

    # -- tokens ------------------------------------------------------------------------------------------
    @property
    def token_dim(self) -> int:
        pt, ph, pw = self.patch
        return self.channels * pt * ph * pw

    def adapter_spec(self) -> AdapterSpec:
        d = self.token_dim
        return AdapterSpec(
            in_dim=d,
            out_dim=d,
            num_axes=3,
            axis_split=self.axis_split,
            rope_layout="blocked",
            rope_theta=self.rope_theta,
            train_extent=tuple(float(n) for n in grid_size(self.default_shape(), self.patch)),
        )

    def _check(self, i: int, clip: Tensor) -> None:
        if not isinstance(clip, Tensor) or clip.dim() != 4:
            got = tuple(clip.shape) if isinstance(clip, Tensor) else type(clip).__name__
            raise ValueError(f"video sample {i} must be a clip tensor (T, C, H, W); got {got}")
        if clip.shape[1] != self.channels:
            raise ValueError(
                f"video sample {i} has {clip.shape[1]} channels (shape {tuple(clip.shape)} read as T, C, H, W); "
                f"this plugin expects C = {self.channels}"
            )
        grid_size(tuple(clip.shape), self.patch)

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        """Clips of any tileable (T, H, W) to one right-padded batch; shapes hold each clip's (T, C, H, W)."""
        if len(samples) == 0:
            raise ValueError("tokenize needs at least one clip")
        tokens, positions, shapes = [], [], []
        for i, clip in enumerate(samples):
            self._check(i, clip)
            tokens.append(patchify(clip.float(), self.patch))
            positions.append(grid_positions(grid_size(tuple(clip.shape), self.patch), device=clip.device))
            shapes.append(tuple(int(s) for s in clip.shape))
        return TokenBatch.from_sequences(tokens, positions, shapes, meta={"patch": self.patch})

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Each sample's first ``nt*nh*nw`` tokens back to its clip; only the first ``in_dim`` channels are read."""
        d = self.token_dim
        if batch.dim < d:
            raise ValueError(f"video tokens must be at least {d} wide (C * pt * ph * pw); got {batch.dim}")
        clips = []
        for i, shape in enumerate(batch.shapes):
            nt, nh, nw = grid_size(tuple(shape), self.patch)
            n = nt * nh * nw
            real = int(batch.mask[i].sum())
            if real != n:
                raise ValueError(f"sample {i}: shape {tuple(shape)} needs {n} tokens but the mask has {real}")
            clips.append(unpatchify(batch.tokens[i, :n, :d], tuple(shape), self.patch))
        return clips

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return tuple(int(s) for s in sample.shape)

    def default_shape(self) -> tuple[int, ...]:
        return (self.frames, self.channels, *self.size)

    def longer_shape(self, frames: int) -> tuple[int, ...]:
        """The default clip with ``frames`` frames, e.g. to generate beyond the trained length."""
        return (int(frames), self.channels, *self.size)

    # -- people-facing output ----------------------------------------------------------------------------
    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        """One looping GIF per clip plus a captioned PNG filmstrip of all of them."""
        return write_clip_previews(samples, conditions, out_dir, stem, fps=self.fps)

    def preview_to_tensorboard(self, writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
        """Each clip as a filmstrip image (frames side by side); TensorBoard video needs extra packages."""
        for i, clip in enumerate(samples):
            frames = [torch.from_numpy(np.array(f.convert("RGB"))) for f in clip_to_frames(clip)]
            strip = torch.cat(frames, dim=1).permute(2, 0, 1)  # (3, H, T * W) uint8
            writer.add_image(f"{tag}/{i}", strip, step)

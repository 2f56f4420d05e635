"""Spatio-temporal patches: a clip (T, C, H, W) to tokens (L, C*pt*ph*pw) on a (t, h, w) grid, and back.

A clip of ``T`` frames is cut into non-overlapping boxes of ``pt`` frames x ``ph`` rows x ``pw`` columns.
With the grid ``(nt, nh, nw) = (T/pt, H/ph, W/pw)`` the token of box ``(i, j, k)`` is

    token[(i * nh + j) * nw + k] = clip[i*pt:(i+1)*pt, :, j*ph:(j+1)*ph, k*pw:(k+1)*pw]   flattened in (C, pt, ph, pw) order

and its position is ``(i, j, k)``: frames live on the first RoPE axis, rows and columns on the other two.
For ``pt = 1`` the flattening is the released image model's (C, ph, pw) patch order, frame by frame.
Both maps are :mod:`lumina_core.grid`'s (channel axis 1), pure reshapes, so ``unpatchify(patchify(x)) == x``
exactly; ``grid_positions`` is the core's too.
"""

from __future__ import annotations

from torch import Tensor

from lumina_core import grid
from lumina_core.grid import grid_positions

__all__ = ["grid_positions", "grid_size", "patchify", "unpatchify"]


def grid_size(clip_shape: tuple[int, ...], patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """``(nt, nh, nw)`` for a clip of shape ``(T, C, H, W)``; ValueError if a patch does not tile it."""
    if len(clip_shape) != 4:
        raise ValueError(f"a clip must have shape (T, C, H, W); got {tuple(clip_shape)}")
    t, _, h, w = clip_shape
    pt, ph, pw = patch
    if t % pt or h % ph or w % pw or min(t, h, w) <= 0:
        raise ValueError(
            f"clip (T, C, H, W) = {tuple(clip_shape)} cannot be cut into patches (pt, ph, pw) = {patch}: "
            "T, H and W must be positive multiples of pt, ph and pw"
        )
    return t // pt, h // ph, w // pw


def patchify(clip: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """(T, C, H, W) -> (nt * nh * nw, C * pt * ph * pw), tokens in (t, h, w) raster order."""
    grid_size(tuple(clip.shape), patch)
    return grid.patchify(clip, patch, channel_dim=1)


def unpatchify(tokens: Tensor, clip_shape: tuple[int, ...], patch: tuple[int, int, int]) -> Tensor:
    """Inverse of :func:`patchify`: (nt * nh * nw, C * pt * ph * pw) -> (T, C, H, W)."""
    grid_size(tuple(clip_shape), patch)
    return grid.unpatchify(tokens, clip_shape, patch, channel_dim=1)

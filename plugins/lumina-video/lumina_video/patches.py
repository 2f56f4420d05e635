"""Spatio-temporal patches: a clip (T, C, H, W) to tokens (L, C*pt*ph*pw) on a (t, h, w) grid, and back.

A clip of ``T`` frames is cut into non-overlapping boxes of ``pt`` frames x ``ph`` rows x ``pw`` columns.
With the grid ``(nt, nh, nw) = (T/pt, H/ph, W/pw)`` the token of box ``(i, j, k)`` is

    token[(i * nh + j) * nw + k] = clip[i*pt:(i+1)*pt, :, j*ph:(j+1)*ph, k*pw:(k+1)*pw]   flattened in (C, pt, ph, pw) order

and its position is ``(i, j, k)``: frames live on the first RoPE axis, rows and columns on the other two.
For ``pt = 1`` the flattening is the released image model's (C, ph, pw) patch order, frame by frame.
Both maps are pure reshapes, so ``unpatchify(patchify(x)) == x`` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
    nt, nh, nw = grid_size(tuple(clip.shape), patch)
    pt, ph, pw = patch
    c = clip.shape[1]
    x = clip.reshape(nt, pt, c, nh, ph, nw, pw)
    x = x.permute(0, 3, 5, 2, 1, 4, 6)  # (nt, nh, nw, C, pt, ph, pw)
    return x.reshape(nt * nh * nw, c * pt * ph * pw)


def unpatchify(tokens: Tensor, clip_shape: tuple[int, ...], patch: tuple[int, int, int]) -> Tensor:
    """Inverse of :func:`patchify`: (nt * nh * nw, C * pt * ph * pw) -> (T, C, H, W)."""
    nt, nh, nw = grid_size(tuple(clip_shape), patch)
    pt, ph, pw = patch
    t, c, h, w = clip_shape
    expected = (nt * nh * nw, c * pt * ph * pw)
    if tuple(tokens.shape) != expected:
        raise ValueError(
            f"tokens for a clip of shape {tuple(clip_shape)} with patch {patch} must be {expected}; "
            f"got {tuple(tokens.shape)}"
        )
    x = tokens.reshape(nt, nh, nw, c, pt, ph, pw)
    x = x.permute(0, 4, 3, 1, 5, 2, 6)  # (nt, pt, C, nh, ph, nw, pw)
    return x.reshape(t, c, h, w)


def grid_positions(grid: tuple[int, int, int], device: torch.device | str | None = None) -> Tensor:
    """(nt * nh * nw, 3) float positions ``(t, h, w)`` in patch units, in the order :func:`patchify` uses."""
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in grid]
    tt, hh, ww = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3)

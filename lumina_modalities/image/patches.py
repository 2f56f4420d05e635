"""Image <-> patch tokens, in the released order.

An image ``x`` of shape (C, H, W) with patch size ``p`` becomes ``L = (H/p) (W/p)`` tokens of width
``C p p``. Tokens are enumerated row-major over the patch grid (token ``i * W/p + j`` is patch row ``i``,
column ``j``) and each token is flattened in (C, ph, pw) order - the order the released Lumina-Next
``x_embedder`` expects:

    tokens[i * gw + j, c * p * p + a * p + b] = x[c, i * p + a, j * p + b]

Positions are the integer patch coordinates (i, j), one row per token, read by 2-D RoPE on (h, w).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_divisible(shape: tuple[int, ...], multiple: int, what: str = "image") -> tuple[int, int]:
    """Return (H, W) of a (C, H, W) shape after checking both sides are multiples of ``multiple``."""
    if len(shape) != 3:
        raise ValueError(f"expected an {what} of shape (C, H, W); got shape {tuple(shape)}")
    _, h, w = shape
    if h % multiple or w % multiple or h <= 0 or w <= 0:
        raise ValueError(
            f"{what} sides must be positive multiples of {multiple} (patch size x autoencoder factor); "
            f"got H={h}, W={w}"
        )
    return h, w


def patchify(x: Tensor, p: int) -> Tensor:
    """(C, H, W) -> (H/p * W/p, C * p * p), patches row-major, each flattened in (C, ph, pw) order."""
    c, h, w = x.shape
    check_divisible(tuple(x.shape), p)
    gh, gw = h // p, w // p
    x = x.reshape(c, gh, p, gw, p)  # (C, gh, ph, gw, pw)
    x = x.permute(1, 3, 0, 2, 4)  # (gh, gw, C, ph, pw)
    return x.reshape(gh * gw, c * p * p)


def unpatchify(tokens: Tensor, grid: tuple[int, int], channels: int, p: int) -> Tensor:
    """Inverse of :func:`patchify`: (gh * gw, C * p * p) -> (C, gh * p, gw * p)."""
    gh, gw = grid
    if tokens.shape != (gh * gw, channels * p * p):
        raise ValueError(
            f"unpatchify expects ({gh * gw}, {channels * p * p}) tokens for grid {grid}, C={channels}, "
            f"p={p}; got {tuple(tokens.shape)}"
        )
    x = tokens.reshape(gh, gw, channels, p, p).permute(2, 0, 3, 1, 4)  # (C, gh, ph, gw, pw)
    return x.reshape(channels, gh * p, gw * p)


def grid_positions(gh: int, gw: int, device: torch.device | str | None = None) -> Tensor:
    """(gh * gw, 2) float patch coordinates (row i, column j), row-major like :func:`patchify`."""
    ii, jj = torch.meshgrid(
        torch.arange(gh, device=device, dtype=torch.float32),
        torch.arange(gw, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([ii.reshape(-1), jj.reshape(-1)], dim=-1)

"""Image <-> patch tokens, in the released order.

An image ``x`` of shape (C, H, W) with patch size ``p`` becomes ``L = (H/p) (W/p)`` tokens of width
``C p p``. Tokens are enumerated row-major over the patch grid (token ``i * W/p + j`` is patch row ``i``,
column ``j``) and each token is flattened in (C, ph, pw) order - the order the released Lumina-Next
``x_embedder`` expects:

    tokens[i * gw + j, c * p * p + a * p + b] = x[c, i * p + a, j * p + b]

Positions are the integer patch coordinates (i, j), one row per token, read by 2-D RoPE on (h, w). The maps
are :mod:`lumina_core.grid`'s, which every grid modality shares.
"""

from __future__ import annotations

from torch import Tensor

from lumina_core import grid
from lumina_core.grid import grid_positions

__all__ = ["check_divisible", "grid_positions", "patchify", "unpatchify"]


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
    check_divisible(tuple(x.shape), p)
    return grid.patchify(x, (p, p))


def unpatchify(tokens: Tensor, grid_hw: tuple[int, int], channels: int, p: int) -> Tensor:
    """Inverse of :func:`patchify`: (gh * gw, C * p * p) -> (C, gh * p, gw * p)."""
    gh, gw = grid_hw
    return grid.unpatchify(tokens, (channels, gh * p, gw * p), (p, p))

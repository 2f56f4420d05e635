"""N-D patch grids: positions, patchify and unpatchify, shared by every grid modality.

A sample with a channel axis and ``A`` grid axes of sizes ``S_1 .. S_A`` is cut into non-overlapping boxes
of ``p_1 x .. x p_A``; the grid has ``n_a = S_a / p_a`` boxes per axis. With channels first,

    tokens[flat(i_1, .., i_A), flat(c, a_1, .., a_A)] = x[c, i_1 p_1 + a_1, .., i_A p_A + a_A]

where ``flat`` is row-major (last index fastest): tokens enumerate the grid row-major and each token is its
box flattened in (C, p_1, .., p_A) order - for images (C, ph, pw), the released Lumina-Next ``x_embedder``
order. ``channel_dim`` says where the channel axis is in the sample (video and multi-view samples are
(T, C, H, W)); ``grid_order`` enumerates the grid with another axis outermost (a spectrogram (F, N) patched
freq x time but enumerated time-major, so that a longer clip appends tokens). The token's position is its
grid index ``(i_1, .., i_A)`` in the same axis order as the enumeration, read by N-D RoPE.

Both maps are reshapes and permutations, so ``unpatchify(patchify(x)) == x`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def grid_positions(*sizes: int | Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """(prod(sizes), A) float positions of an A-axis grid, row-major (the last axis varies fastest).

    The sizes come one per argument or as one sequence: ``grid_positions(gh, gw)`` is
    ``grid_positions((gh, gw))``; ``device`` is keyword-only."""
    if len(sizes) == 1 and isinstance(sizes[0], Sequence | torch.Size):
        sizes = tuple(sizes[0])
    if not all(isinstance(n, int) or (isinstance(n, Tensor) and n.dim() == 0) for n in sizes):
        raise ValueError(f"grid_positions takes whole-number sizes (device by keyword); got {sizes!r}")
    axes = [torch.arange(int(n), dtype=torch.float32, device=device) for n in sizes]
    if not axes:
        return torch.zeros(1, 0, device=device)
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))


def patch_grid(sizes: Sequence[int], patch: Sequence[int], what: str = "sample") -> tuple[int, ...]:
    """Boxes per axis, ``S_a / p_a``; ValueError unless every size is a positive multiple of its patch."""
    if len(sizes) != len(patch):
        raise ValueError(
            f"{what}: {len(patch)} patch sizes {tuple(patch)} for {len(sizes)} grid axes {tuple(sizes)}"
        )
    if any(int(p) <= 0 for p in patch):
        raise ValueError(f"{what}: patch sizes must be positive; got {tuple(patch)}")
    if any(int(s) <= 0 or int(s) % int(p) for s, p in zip(sizes, patch, strict=True)):
        raise ValueError(
            f"{what} of grid sizes {tuple(sizes)} cannot be cut into patches {tuple(patch)}: every size must be "
            "a positive multiple of its patch"
        )
    return tuple(int(s) // int(p) for s, p in zip(sizes, patch, strict=True))


def _order(grid_order: Sequence[int] | None, a: int) -> tuple[int, ...]:
    order = tuple(range(a)) if grid_order is None else tuple(int(i) for i in grid_order)
    if sorted(order) != list(range(a)):
        raise ValueError(f"grid_order must be a permutation of 0..{a - 1}; got {order}")
    return order


def patchify(
    x: Tensor, patch: Sequence[int], channel_dim: int = 0, grid_order: Sequence[int] | None = None
) -> Tensor:
    """(..C.., S_1, .., S_A) -> (prod n_a, C prod p_a): boxes enumerated row-major over the grid (in
    ``grid_order``), each flattened in (C, p_1, .., p_A) order. The sample has exactly one channel axis, at
    ``channel_dim``; the other axes are the grid axes, in order."""
    x = x.movedim(channel_dim, 0)
    c, sizes = x.shape[0], tuple(x.shape[1:])
    a = len(sizes)
    grid = patch_grid(sizes, patch)
    order = _order(grid_order, a)
    split = [c]
    for n, p in zip(grid, patch, strict=True):
        split += [n, int(p)]
    x = x.reshape(split)  # (C, n_1, p_1, .., n_A, p_A)
    x = x.permute(*[1 + 2 * i for i in order], 0, *[2 + 2 * i for i in range(a)])  # (n.., C, p..)
    return x.reshape(math.prod(grid), c * math.prod(int(p) for p in patch))


def unpatchify(
    tokens: Tensor,
    shape: Sequence[int],
    patch: Sequence[int],
    channel_dim: int = 0,
    grid_order: Sequence[int] | None = None,
) -> Tensor:
    """Inverse of :func:`patchify`: tokens (prod n_a, C prod p_a) -> a sample of ``shape`` (channel axis at
    ``channel_dim``, as given to :func:`patchify`)."""
    shape = tuple(int(s) for s in shape)
    cd = channel_dim % len(shape)
    c, sizes = shape[cd], shape[:cd] + shape[cd + 1 :]
    grid = patch_grid(sizes, patch)
    a = len(sizes)
    order = _order(grid_order, a)
    expected = (math.prod(grid), c * math.prod(int(p) for p in patch))
    if tuple(tokens.shape) != expected:
        raise ValueError(
            f"tokens of a sample of shape {shape} with patch {tuple(patch)} must be {expected}; got "
            f"{tuple(tokens.shape)}"
        )
    x = tokens.reshape(*[grid[i] for i in order], c, *[int(p) for p in patch])  # (n.. in order, C, p..)
    where = {axis: k for k, axis in enumerate(order)}  # grid axis -> its dim in the token-order view
    dims = [a]
    for i in range(a):
        dims += [where[i], a + 1 + i]
    x = x.permute(*dims).reshape(c, *sizes)  # (C, S_1, .., S_A)
    return x.movedim(0, channel_dim)

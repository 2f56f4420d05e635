"""The shared N-D patch grid (lumina_core.grid): known-answer layout, exact round trips, positions, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lumina_core.grid import grid_positions, patch_grid, patchify, unpatchify


def _by_formula(x: torch.Tensor, patch: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
    """tokens[flat(i in order), flat(c, a_1..a_A)] = x[c, i_1 p_1 + a_1, ...], element by element."""
    c, sizes = x.shape[0], x.shape[1:]
    grid = [s // p for s, p in zip(sizes, patch, strict=True)]
    rows = []
    for idx in itertools.product(*[range(grid[k]) for k in order]):
        i = [0] * len(grid)
        for k, v in zip(order, idx, strict=True):
            i[k] = v
        row = []
        for ch in range(c):
            for a in itertools.product(*[range(p) for p in patch]):
                row.append(x[(ch, *[i[k] * patch[k] + a[k] for k in range(len(grid))])])
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "shape, patch, order",
    [((3, 4, 6), (2, 3), (0, 1)), ((2, 4, 6, 2), (2, 2, 1), (0, 1, 2)), ((1, 4, 6), (2, 3), (1, 0))],
)
def test_patchify_matches_the_documented_formula(shape, patch, order):
    x = torch.randn(shape)
    assert torch.equal(patchify(x, patch, grid_order=order), _by_formula(x, patch, order))


@pytest.mark.parametrize("channel_dim", [0, 1, -1])
@pytest.mark.parametrize("order", [None, (2, 0, 1)])
def test_unpatchify_inverts_patchify_exactly(channel_dim, order):
    sizes = [4, 6, 8]
    shape = list(sizes)
    shape.insert(channel_dim % 4, 3)
    x = torch.randn(shape)
    tokens = patchify(x, (2, 3, 4), channel_dim=channel_dim, grid_order=order)
    assert tokens.shape == (2 * 2 * 2, 3 * 2 * 3 * 4)
    assert torch.equal(unpatchify(tokens, x.shape, (2, 3, 4), channel_dim=channel_dim, grid_order=order), x)


def test_positions_enumerate_the_grid_like_the_tokens():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)  # value = flat index of the cell
    tokens = patchify(x, (1, 1, 1))
    pos = grid_positions(2, 3, 4)
    assert pos.shape == (24, 3)
    assert torch.equal(tokens[:, 0], pos[:, 0] * 12 + pos[:, 1] * 4 + pos[:, 2])
    assert torch.equal(grid_positions((2, 3, 4)), pos)  # one sequence or one argument per axis
    assert torch.equal(grid_positions(torch.Size([2, 3, 4])), pos)
    assert grid_positions(5).tolist() == [[0.0], [1.0], [2.0], [3.0], [4.0]]
    assert math.prod(grid_positions(3, 2).shape) == 12


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match=r"cannot be cut into patches \(2, 2\)"):
        patchify(torch.zeros(3, 5, 4), (2, 2))
    with pytest.raises(ValueError, match="2 patch sizes"):
        patch_grid((4, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="must be \\(4, 12\\); got \\(4, 11\\)"):
        unpatchify(torch.zeros(4, 11), (3, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="permutation"):
        patchify(torch.zeros(1, 4, 4), (2, 2), grid_order=(0, 0))
    with pytest.raises(ValueError, match="device by keyword"):
        grid_positions(2, 3, "cpu")

"""Distances between point clouds: Chamfer distance and Earth Mover's distance.

Chamfer distance (pytorch3d's convention, ``point_reduction="mean"``), on xyz only::

    CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2  +  mean_{y in Y} min_{x in X} |x - y|^2

computed by ``pytorch3d.loss.chamfer_distance`` when pytorch3d imports, otherwise by plain torch
(``torch.cdist``) after a one-line warning; both give the same numbers (tested).

Earth Mover's distance, for equal-size clouds (N points each)::

    EMD(X, Y) = min_{bijection phi} (1/N) sum_i |x_i - y_phi(i)|

(mean Euclidean distance of the optimal matching, i.e. the 1-Wasserstein distance between the two
empirical measures; a cloud shifted by ``v`` is at EMD ``|v|``). It is solved exactly with
``scipy.optimize.linear_sum_assignment``. For clouds of different sizes or larger than ``max_points``, both
clouds are replaced by random equal-size subsets of ``k = min(N, M, max_points)`` points (seeded) and the
exact EMD of the subsets is returned: an approximation whose cost is O(k^3) instead of O(N^3).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

FALLBACK_WARNING = (
    "pytorch3d is not importable; Chamfer distances use the plain-torch fallback (same numbers)"
)


def _pytorch3d_chamfer() -> Callable | None:
    """``pytorch3d.loss.chamfer_distance``, or None (with a one-line warning) when pytorch3d is missing."""
    try:
        from pytorch3d.loss import chamfer_distance
    except ImportError:
        warnings.warn(FALLBACK_WARNING, RuntimeWarning, stacklevel=3)
        return None
    return chamfer_distance


def _pad(clouds: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad (N_i, 3+) clouds to (B, N_max, 3) xyz plus their (B,) lengths."""
    lengths = torch.tensor([c.shape[0] for c in clouds], dtype=torch.long)
    out = torch.zeros(len(clouds), int(lengths.max()), 3)
    for i, c in enumerate(clouds):
        out[i, : c.shape[0]] = c[:, :3].float()
    return out, lengths


def _chamfer_torch(x: Tensor, y: Tensor, x_len: Tensor, y_len: Tensor) -> Tensor:
    """Plain-torch Chamfer distance of padded batches: (B,)."""
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").pow(2)  # (B, N, M), exact differences
    xm = torch.arange(x.shape[1])[None] < x_len[:, None]  # (B, N)
    ym = torch.arange(y.shape[1])[None] < y_len[:, None]  # (B, M)
    d = d.masked_fill(~ym[:, None, :], float("inf"))
    x_to_y = d.min(dim=2).values.masked_fill(~xm, 0).sum(1) / x_len
    d = d.masked_fill(~ym[:, None, :], 0).masked_fill(~xm[:, :, None], float("inf"))
    y_to_x = d.min(dim=1).values.masked_fill(~ym, 0).sum(1) / y_len
    return x_to_y + y_to_x


def chamfer_distance(xs: Sequence[Tensor], ys: Sequence[Tensor], backend: str = "auto") -> Tensor:
    """Chamfer distance of each pair ``(xs[i], ys[i])``: (B,). ``backend``: "auto", "pytorch3d", "torch"."""
    if len(xs) != len(ys) or len(xs) == 0:
        raise ValueError(
            f"chamfer_distance needs two equally long non-empty lists; got {len(xs)} and {len(ys)}"
        )
    x, x_len = _pad(xs)
    y, y_len = _pad(ys)
    fn = None
    if backend in ("auto", "pytorch3d"):
        fn = _pytorch3d_chamfer()
        if fn is None and backend == "pytorch3d":
            raise ImportError("backend='pytorch3d' but pytorch3d cannot be imported")
    elif backend != "torch":
        raise ValueError(f"backend must be 'auto', 'pytorch3d' or 'torch'; got {backend!r}")
    if fn is None:
        return _chamfer_torch(x, y, x_len, y_len)
    cd, _ = fn(x, y, x_lengths=x_len, y_lengths=y_len, batch_reduction=None, point_reduction="mean")
    return cd


def pairwise_chamfer(
    a: Sequence[Tensor], b: Sequence[Tensor], chunk: int = 64, backend: str = "auto"
) -> Tensor:
    """(len(a), len(b)) matrix of Chamfer distances, evaluated in batches of ``chunk`` pairs."""
    pairs = [(i, j) for i in range(len(a)) for j in range(len(b))]
    out = torch.empty(len(a) * len(b))
    for k in range(0, len(pairs), chunk):
        part = pairs[k : k + chunk]
        out[k : k + len(part)] = chamfer_distance([a[i] for i, _ in part], [b[j] for _, j in part], backend)
    return out.view(len(a), len(b))


def emd(x: Tensor, y: Tensor, max_points: int = 128, seed: int = 0) -> float:
    """Earth Mover's distance (mean matched Euclidean distance); exact when ``N == M <= max_points``."""
    from scipy.optimize import linear_sum_assignment

    xa = x[:, :3].detach().double().cpu().numpy()
    ya = y[:, :3].detach().double().cpu().numpy()
    k = min(len(xa), len(ya), max_points)
    if k == 0:
        raise ValueError("emd needs non-empty clouds")
    if len(xa) != k or len(ya) != k:
        rng = np.random.default_rng(seed)
        xa = xa[rng.choice(len(xa), k, replace=False)]
        ya = ya[rng.choice(len(ya), k, replace=False)]
    cost = np.linalg.norm(xa[:, None, :] - ya[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def pairwise_emd(a: Sequence[Tensor], b: Sequence[Tensor], max_points: int = 128, seed: int = 0) -> Tensor:
    """(len(a), len(b)) matrix of (approximate beyond ``max_points``) EMDs."""
    out = torch.empty(len(a), len(b))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = emd(x, y, max_points, seed=seed + i * len(b) + j)
    return out

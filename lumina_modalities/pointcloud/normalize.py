"""Per-cloud normalisation: every cloud is generated and compared in a canonical frame.

Two conventions (``method``):

* ``"sphere"`` (default): centre ``c = mean_i x_i`` (the centroid), scale ``s = max_i |x_i - c|``, so the
  cloud fits the unit ball, touching its surface. This is the usual PointFlow / ShapeNet-style convention.
* ``"box"``: centre ``c = (min_i x_i + max_i x_i) / 2`` (per axis), scale ``s = max_axis (max - min) / 2``,
  so the cloud fits the cube ``[-1, 1]^3`` and touches it on its longest axis. Aspect ratios are kept.
* ``"none"``: ``c = 0``, ``s = 1``.

The normalised cloud is ``(x - c) / s``; it is undone by ``y * s + c``. Normals (columns 3:6, when present)
are unit directions: translation and isotropic scaling leave them unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

NORMALIZATIONS = ("sphere", "box", "none")
#: a cloud whose scale is below this is degenerate (all points in one place)
MIN_SCALE = 1e-8


def normalization_params(
    points: Tensor, method: str = "sphere", name: str = "cloud"
) -> tuple[Tensor, Tensor]:
    """Centre (3,) and scale () of an (N, 3+) cloud under ``method``; ValueError for a degenerate cloud."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalisation must be one of {NORMALIZATIONS}; got {method!r}")
    if points.dim() != 2 or points.shape[1] < 3 or points.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, 3) or (N, 6) cloud; got {tuple(points.shape)}")
    xyz = points[:, :3]
    if not torch.isfinite(xyz).all():
        raise ValueError(f"{name}: the cloud has NaN or infinite coordinates")
    if method == "none":
        return xyz.new_zeros(3), xyz.new_ones(())
    if method == "sphere":
        center = xyz.mean(dim=0)
        scale = (xyz - center).norm(dim=1).max()
    else:
        lo, hi = xyz.min(dim=0).values, xyz.max(dim=0).values
        center = (lo + hi) / 2
        scale = ((hi - lo) / 2).max()
    if float(scale) < MIN_SCALE:
        raise ValueError(f"{name}: degenerate cloud (scale {float(scale):.3g}: all points coincide)")
    return center, scale


def apply_normalization(points: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """``(x - c) / s`` on the xyz columns; other columns (normals) pass through."""
    xyz = (points[:, :3] - center.to(points)) / scale.to(points)
    return torch.cat([xyz, points[:, 3:]], dim=1)


def undo_normalization(points: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """``y * s + c`` on the xyz columns; the inverse of :func:`apply_normalization`."""
    xyz = points[:, :3] * scale.to(points) + center.to(points)
    return torch.cat([xyz, points[:, 3:]], dim=1)


def normalize_cloud(points: Tensor, method: str = "sphere", name: str = "cloud") -> Tensor:
    """The cloud in its canonical frame (see the module docstring)."""
    center, scale = normalization_params(points, method, name)
    return apply_normalization(points, center, scale)

"""Pinhole cameras: orbits, rigidity checks, cameras relative to the first view, Plücker rays.

Conventions (OpenGL-like): a camera looks along its own ``-z`` axis, ``+y`` is up in the image, ``+x`` right.
A camera-to-world matrix ``c2w`` (4, 4) maps camera coordinates to world coordinates,
``[R | o; 0 0 0 1]`` with ``R`` orthonormal (``det R = +1``) and ``o`` the camera centre. World ``+z`` is up.

Pixel ``(i, j)`` (row, column) of an ``H x W`` image with vertical field of view ``fov`` has the camera-frame
direction ``((2 (j + 1/2) / W - 1) a s, (1 - 2 (i + 1/2) / H) s, -1)``, ``s = tan(fov / 2)``, ``a = W / H``.

Plücker coordinates of the ray through ``o`` with unit direction ``d`` are ``(d, m)``, ``m = o x d``: six numbers
that do not depend on which point of the ray is chosen, so a per-pixel map of them describes a camera at any
resolution. Cameras are made relative to the first view, ``c2w'_i = c2w_0^{-1} c2w_i``; a rigid motion ``T``
of the whole rig (``c2w_i -> T c2w_i``) cancels, so an object seen from a rotated orbit gets the same rays.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def look_at(eye: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """(4, 4) camera-to-world of a camera at ``eye`` looking at ``target`` (default origin), world ``up`` +z."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = (
        torch.zeros(3, dtype=torch.float64)
        if target is None
        else torch.as_tensor(target, dtype=torch.float64)
    )
    up = (
        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        if up is None
        else torch.as_tensor(up, dtype=torch.float64)
    )
    back = eye - target
    back = back / back.norm()
    right = torch.linalg.cross(up, back)
    if float(right.norm()) < 1e-9:
        raise ValueError(f"look_at: the view direction {(-back).tolist()} is parallel to up {up.tolist()}")
    right = right / right.norm()
    cam_up = torch.linalg.cross(back, right)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, back, eye
    return c2w


def orbit(
    views: int,
    elevation: float = 20.0,
    radius: float = 3.0,
    azimuth0: float = 0.0,
    span: float = 360.0,
    azimuths: list[float] | None = None,
) -> Tensor:
    """(V, 4, 4) float32 cameras on a circle around the origin, looking at it.

    ``elevation`` and azimuths in degrees; view ``v`` sits at azimuth ``azimuth0 + v span / V`` (a closed
    orbit for ``span = 360``) unless ``azimuths`` lists them explicitly.
    """
    if azimuths is None:
        if views < 1:
            raise ValueError(f"an orbit needs at least one view; got views={views}")
        azimuths = [azimuth0 + v * span / views for v in range(views)]
    e = math.radians(elevation)
    cams = []
    for a_deg in azimuths:
        a = math.radians(a_deg)
        eye = torch.tensor(
            [radius * math.cos(e) * math.cos(a), radius * math.cos(e) * math.sin(a), radius * math.sin(e)]
        )
        cams.append(look_at(eye))
    return torch.stack(cams).float()


def rigidity_error(c2w: Tensor) -> Tensor:
    """(V,) how far each (4, 4) matrix is from a rigid transform: ``|R^T R - I|_max``, ``|det R - 1|`` and
    the bottom row's distance from ``(0, 0, 0, 1)``, whichever is largest."""
    c2w = c2w.double()
    rot = c2w[..., :3, :3]
    eye = torch.eye(3, dtype=c2w.dtype)
    ortho = (rot.transpose(-1, -2) @ rot - eye).abs().amax(dim=(-1, -2))
    det = (torch.linalg.det(rot) - 1).abs()
    bottom = (c2w[..., 3, :] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype)).abs().amax(dim=-1)
    return torch.stack([ortho, det, bottom]).amax(dim=0)


def check_rigid(c2w: Tensor, tol: float = 1e-3, what: str = "camera") -> None:
    """Raise ValueError naming the first camera that is not a (4, 4) rigid transform (rotation + translation)."""
    if c2w.dim() != 3 or tuple(c2w.shape[1:]) != (4, 4):
        raise ValueError(
            f"{what} matrices must be (V, 4, 4) camera-to-world transforms; got {tuple(c2w.shape)}"
        )
    if not bool(torch.isfinite(c2w).all()):
        raise ValueError(f"{what} matrices contain NaN or infinite values")
    err = rigidity_error(c2w)
    bad = (err > tol).nonzero().flatten().tolist()
    if bad:
        v = bad[0]
        raise ValueError(
            f"{what} {v} is not a rigid camera-to-world transform (rotation with det +1 plus a translation, "
            f"bottom row 0 0 0 1): deviation {float(err[v]):.3g} > {tol}; matrix {c2w[v].tolist()}"
        )


def relative_to_first(c2w: Tensor) -> Tensor:
    """(V, 4, 4) cameras expressed in the first camera's frame: ``c2w_0^{-1} c2w_i`` (the first is I)."""
    c2w = c2w.double()
    rot, o = c2w[0, :3, :3], c2w[0, :3, 3]
    inv = torch.eye(4, dtype=c2w.dtype)
    inv[:3, :3] = rot.T
    inv[:3, 3] = -rot.T @ o
    return (inv @ c2w).float()


def pixel_directions(height: int, width: int, fov: float) -> Tensor:
    """(H, W, 3) camera-frame ray directions (unit length) of the pixel centres; ``fov`` vertical, degrees."""
    s = math.tan(math.radians(fov) / 2)
    aspect = width / height
    i = torch.arange(height, dtype=torch.float64)
    j = torch.arange(width, dtype=torch.float64)
    y = (1 - 2 * (i + 0.5) / height) * s
    x = (2 * (j + 0.5) / width - 1) * s * aspect
    d = torch.stack(
        torch.broadcast_tensors(x[None, :], y[:, None], -torch.ones(height, width, dtype=torch.float64)), -1
    )
    return d / d.norm(dim=-1, keepdim=True)


def rays(c2w: Tensor, height: int, width: int, fov: float) -> tuple[Tensor, Tensor]:
    """World-space ``(origins, directions)``, each (V, H, W, 3), of every pixel of every camera."""
    dirs_cam = pixel_directions(height, width, fov).to(
        c2w.dtype if c2w.is_floating_point() else torch.float32
    )
    rot = c2w[:, :3, :3].to(dirs_cam.dtype)
    d = torch.einsum("vab,hwb->vhwa", rot, dirs_cam)
    o = c2w[:, None, None, :3, 3].to(dirs_cam.dtype).expand_as(d)
    return o, d


def plucker(c2w: Tensor, height: int, width: int, fov: float) -> Tensor:
    """(V, 6, H, W) Plücker ray map ``(d, o x d)`` of each pixel (float32)."""
    o, d = rays(c2w.double(), height, width, fov)
    m = torch.linalg.cross(o, d, dim=-1)
    return torch.cat([d, m], dim=-1).permute(0, 3, 1, 2).float()


def project(points: Tensor, c2w: Tensor, height: int, width: int, fov: float) -> tuple[Tensor, Tensor]:
    """Project world points (N, 3) into each camera: pixel coordinates (V, N, 2) as (row, column), continuous
    with pixel centres at ``i + 1/2``, and (V, N) bool "in front of the camera"."""
    c2w = c2w.to(points.dtype)
    rot, o = c2w[:, :3, :3], c2w[:, :3, 3]
    pc = torch.einsum("vba,vnb->vna", rot, points[None] - o[:, None])  # R^T (p - o)
    z = -pc[..., 2]
    front = z > 1e-6
    s = math.tan(math.radians(fov) / 2)
    zs = z.clamp_min(1e-6)
    x = pc[..., 0] / zs / (s * width / height)
    y = pc[..., 1] / zs / s
    col = (x + 1) * width / 2
    row = (1 - y) * height / 2
    return torch.stack([row, col], dim=-1), front

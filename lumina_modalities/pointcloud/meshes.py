"""Meshes: load and check them, and sample point clouds from their surfaces.

A mesh is rejected (``BadMeshError``, a ``ValueError`` whose message names the file) when it has no faces,
non-finite vertex coordinates, or a degenerate scale (zero extent or zero surface area, so no surface to
sample). Points are drawn uniformly on the surface (area-weighted faces, uniform barycentric
coordinates), by trimesh or by pytorch3d's ``sample_points_from_meshes``, seeded so an index always gives
the same cloud.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.data.robust import CorruptSampleError

MESH_EXTENSIONS = ("obj", "ply", "stl", "off")
MIN_EXTENT = 1e-9


class BadMeshError(CorruptSampleError):
    """A mesh that cannot give a point cloud; the message starts with the file name (``name``).

    A ``CorruptSampleError``, so :class:`lumina_core.data.robust.SkipCorrupt` skips and counts it.
    """


def load_mesh(source: str | Path | bytes, name: str | None = None, file_type: str | None = None) -> Any:
    """Load one mesh (a path, or raw bytes with ``file_type``) as a single ``trimesh.Trimesh``, unprocessed."""
    import trimesh

    name = name or str(source if not isinstance(source, bytes) else "<bytes>")
    try:
        if isinstance(source, bytes):
            obj = trimesh.load(io.BytesIO(source), file_type=file_type, force="mesh", process=False)
        else:
            obj = trimesh.load(str(source), file_type=file_type, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many kinds for unreadable files
        raise BadMeshError(f"cannot read the mesh ({type(exc).__name__}: {exc})", name=name) from exc
    if not isinstance(obj, trimesh.Trimesh):
        raise BadMeshError(f"the file holds no triangle mesh (got {type(obj).__name__})", name=name)
    return obj


def check_mesh(mesh: Any, name: str) -> None:
    """Raise :class:`BadMeshError` naming ``name`` when the mesh has no faces, NaNs or a zero scale."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        raise BadMeshError(f"the mesh has no faces ({len(vertices)} vertices)", name=name)
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        raise BadMeshError(f"{bad} vertices have NaN or infinite coordinates", name=name)
    used = vertices[np.unique(faces)]
    extent = float((used.max(0) - used.min(0)).max())
    area = float(mesh.area)
    if extent < MIN_EXTENT or not area > 0:
        raise BadMeshError(f"degenerate scale (extent {extent:.3g}, surface area {area:.3g})", name=name)


def sample_surface(
    mesh: Any, num_points: int, seed: int, normals: bool = False, sampler: str = "trimesh"
) -> Tensor:
    """(num_points, 3 or 6) points uniformly on the mesh surface, deterministic in ``seed``."""
    if sampler == "trimesh":
        import trimesh

        pts, face_index = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
        out = torch.as_tensor(np.asarray(pts), dtype=torch.float32)
        if normals:
            nrm = torch.as_tensor(np.asarray(mesh.face_normals)[face_index], dtype=torch.float32)
            out = torch.cat([out, nrm], dim=1)
        return out
    if sampler == "pytorch3d":
        from pytorch3d.ops import sample_points_from_meshes
        from pytorch3d.structures import Meshes

        verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)
        faces = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            res = sample_points_from_meshes(Meshes([verts], [faces]), num_points, return_normals=normals)
        return torch.cat([res[0][0], res[1][0]], dim=1) if normals else res[0]
    raise ValueError(f"sampler must be 'trimesh' or 'pytorch3d'; got {sampler!r}")

"""Point-cloud previews a person can open: ASCII PLY files and a PNG of orthographic views.

The PNG is rasterised with numpy and Pillow (no matplotlib): each cloud is drawn from the front (x right,
z up), the side (y right, z up) and the top (x right, y up), orthographically. A z-buffer keeps the point
nearest to the viewer in each pixel, and its brightness follows its depth (near = bright, far = dark).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

#: (right axis, up axis, towards-viewer axis, sign of depth) for the three views
VIEWS = {"front": (0, 2, 1, -1.0), "side": (1, 2, 0, 1.0), "top": (0, 1, 2, 1.0)}


def write_ply(points: Tensor, path: str | Path) -> Path:
    """Write an (N, 3) or (N, 6) cloud (xyz, optionally normals) as an ASCII PLY file."""
    pts = points.detach().float().cpu().numpy()
    if pts.ndim != 2 or pts.shape[1] not in (3, 6):
        raise ValueError(f"write_ply expects an (N, 3) or (N, 6) cloud; got {pts.shape}")
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if pts.shape[1] == 6 else [])
    header = ["ply", "format ascii 1.0", f"element vertex {len(pts)}"]
    header += [f"property float {n}" for n in names] + ["end_header"]
    body = "\n".join(" ".join(f"{v:.6g}" for v in row) for row in pts)
    path = Path(path)
    path.write_text("\n".join(header) + "\n" + body + ("\n" if len(pts) else ""))
    return path


def read_ply_points(path: str | Path) -> np.ndarray:
    """Read the vertex table back from an ASCII PLY written by :func:`write_ply`."""
    lines = Path(path).read_text().splitlines()
    end = lines.index("end_header")
    n = int(next(line.split()[2] for line in lines[:end] if line.startswith("element vertex")))
    return np.array(
        [[float(v) for v in line.split()] for line in lines[end + 1 : end + 1 + n]], dtype=np.float32
    )


def render_view(points: np.ndarray, view: str = "front", size: int = 128, radius: int = 1) -> np.ndarray:
    """(size, size) uint8 depth-shaded orthographic image of a cloud assumed inside ``[-1, 1]^3``."""
    right, up, depth_axis, sign = VIEWS[view]
    xyz = np.clip(points[:, :3], -1.0, 1.0)
    u = ((xyz[:, right] + 1) / 2 * (size - 1)).round().astype(int)
    v = ((1 - (xyz[:, up] + 1) / 2) * (size - 1)).round().astype(int)
    depth = sign * xyz[:, depth_axis]  # larger = nearer the viewer
    zbuf = np.full((size, size), -np.inf)
    for du in range(-radius, radius + 1):
        for dv in range(-radius, radius + 1):
            uu, vv = np.clip(u + du, 0, size - 1), np.clip(v + dv, 0, size - 1)
            np.maximum.at(zbuf, (vv, uu), depth)
    img = np.full((size, size), 255, dtype=np.uint8)
    hit = np.isfinite(zbuf)
    img[hit] = (200 - 150 * (zbuf[hit] + 1) / 2).clip(0, 255).astype(np.uint8)  # near: dark ink
    return img


def write_views_png(
    samples: Sequence[Tensor], path: str | Path, labels: Sequence[str] | None = None, size: int = 128
) -> Path:
    """One row per cloud, three views per row (front, side, top), labelled with its condition."""
    from PIL import Image, ImageDraw

    from .normalize import normalize_cloud

    label_h = 14
    pad = 4
    width = 3 * size + 4 * pad
    rows = max(len(samples), 1)
    canvas = Image.new("L", (width, rows * (size + label_h + pad) + pad), 255)
    draw = ImageDraw.Draw(canvas)
    for i, s in enumerate(samples):
        pts = s.detach().float().cpu()
        try:  # show every cloud in its canonical frame; a degenerate one is drawn as it is
            pts = normalize_cloud(pts, "box")
        except ValueError:
            pass
        y0 = pad + i * (size + label_h + pad)
        if labels is not None and i < len(labels):
            draw.text((pad, y0), str(labels[i])[:60], fill=0)
        for k, view in enumerate(VIEWS):
            img = Image.fromarray(render_view(pts.numpy(), view, size))
            x0 = pad + k * (size + pad)
            canvas.paste(img, (x0, y0 + label_h))
            draw.rectangle([x0, y0 + label_h, x0 + size - 1, y0 + label_h + size - 1], outline=180)
    path = Path(path)
    canvas.save(path)
    return path

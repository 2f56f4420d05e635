"""A procedural renderer of simple scenes with known geometry and colour (pure torch sphere tracing).

A scene is a list of :class:`Primitive` s (sphere, box, torus, capsule), each with a colour name, a centre and a
size ``s``. Every primitive is a signed distance function (SDF), exact for these shapes:

    sphere   |p| - r                                  r = s
    box      |max(q, 0)| + min(max_k q_k, 0),         q = |p| - b, b = 0.8 s (a cube, axis-aligned)
    torus    |(|p_xy| - R, p_z)| - r                  R = 0.8 s, r = 0.3 s (lying flat, axis +z)
    capsule  |p - (0, 0, clamp(p_z, -h, h))| - r      r = 0.45 s, h = 0.6 s (standing upright)

The scene's SDF is the minimum over primitives. Sphere tracing walks each pixel's ray ``o + t d`` by
``t += SDF(o + t d)``; since the SDF never overestimates the distance to the surface, it stops at the first
hit. The surface normal is the SDF's gradient (central differences); colour is Lambertian under one world-
fixed light, ``albedo (0.3 + 0.7 max(0, n . l))``, on a white background. Depth is the camera-space ``z``
distance of the hit; the silhouette is the set of pixels whose ray hits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .cameras import pixel_directions

KINDS = ("sphere", "box", "torus", "capsule")
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.80),
    "cyan": (0.10, 0.80, 0.85),
}
BACKGROUND = 1.0
LIGHT = (0.4, 0.3, 1.0)


@dataclass(frozen=True)
class Primitive:
    kind: str
    color: str
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    size: float = 0.6

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown primitive kind {self.kind!r}; expected one of {KINDS}")
        if self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; expected one of {tuple(COLORS)}")
        if not self.size > 0:
            raise ValueError(f"primitive size must be positive; got {self.size}")

    def sdf(self, p: Tensor) -> Tensor:
        """(N,) signed distance of points ``p`` (N, 3) to this primitive."""
        q = p - torch.tensor(self.center, dtype=p.dtype)
        s = self.size
        if self.kind == "sphere":
            return q.norm(dim=-1) - s
        if self.kind == "box":
            d = q.abs() - 0.8 * s
            return d.clamp_min(0).norm(dim=-1) + d.amax(dim=-1).clamp_max(0)
        if self.kind == "torus":
            ring = torch.stack([q[:, :2].norm(dim=-1) - 0.8 * s, q[:, 2]], dim=-1)
            return ring.norm(dim=-1) - 0.3 * s
        h = 0.6 * s  # capsule
        axis = torch.zeros_like(q)
        axis[:, 2] = q[:, 2].clamp(-h, h)
        return (q - axis).norm(dim=-1) - 0.45 * s

    def extent(self) -> float:
        """Radius of a ball around the centre that contains the primitive."""
        return {"sphere": 1.0, "box": 0.8 * math.sqrt(3), "torus": 1.1, "capsule": 1.05}[
            self.kind
        ] * self.size


@dataclass(frozen=True)
class Scene:
    objects: tuple[Primitive, ...]

    def caption(self) -> str:
        """``"a red box"`` or ``"a red box beside a blue sphere"``."""
        return " beside ".join(f"a {o.color} {o.kind}" for o in self.objects)

    def class_id(self) -> int:
        """``4 colour + kind`` of the first object (24 classes), for class-conditioned recipes."""
        o = self.objects[0]
        return list(COLORS).index(o.color) * len(KINDS) + KINDS.index(o.kind)

    def with_kind(self, index: int, kind: str) -> Scene:
        """The same scene with object ``index`` replaced by a ``kind`` of the same colour, centre and size."""
        objs = list(self.objects)
        o = objs[index]
        objs[index] = Primitive(kind, o.color, o.center, o.size)
        return Scene(tuple(objs))

    def to_dict(self) -> dict:
        return {"objects": [{"kind": o.kind, "color": o.color, "center": list(o.center), "size": o.size}
                            for o in self.objects]}  # fmt: skip

    @staticmethod
    def from_dict(d: dict) -> Scene:
        return Scene(tuple(Primitive(o["kind"], o["color"], tuple(o["center"]), float(o["size"]))
                           for o in d["objects"]))  # fmt: skip

    def sdf(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """(N,) distance to the nearest primitive and (N,) its index."""
        d = torch.stack([o.sdf(p) for o in self.objects])  # (K, N)
        return d.min(dim=0)


def random_scene(gen: torch.Generator, max_objects: int = 2, kinds: tuple[str, ...] = KINDS,
                 colors: tuple[str, ...] = tuple(COLORS)) -> Scene:  # fmt: skip
    """One or ``max_objects`` (at most 2) primitives of random kind and colour. A single object sits at the
    origin (size 0.55-0.75); two sit opposite each other 0.62 from the origin (size 0.38-0.48) with different
    colours, so the caption names each unambiguously."""

    def pick(seq):
        return seq[int(torch.randint(len(seq), (1,), generator=gen))]

    def uniform(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand(1, generator=gen))

    n = 1 if max_objects <= 1 else 1 + int(torch.randint(2, (1,), generator=gen))
    if n == 1:
        return Scene((Primitive(pick(kinds), pick(colors), (0.0, 0.0, 0.0), round(uniform(0.55, 0.75), 4)),))
    phi = uniform(0, 2 * math.pi)
    c1 = pick(colors)
    c2 = pick([c for c in colors if c != c1])
    objs = []
    for sign, col in ((1, c1), (-1, c2)):
        centre = (round(sign * 0.62 * math.cos(phi), 4), round(sign * 0.62 * math.sin(phi), 4), 0.0)
        objs.append(Primitive(pick(kinds), col, centre, round(uniform(0.38, 0.48), 4)))
    return Scene(tuple(objs))


def _trace(
    scene: Scene, o: Tensor, d: Tensor, steps: int = 96, eps: float = 1e-4
) -> tuple[Tensor, Tensor, Tensor]:
    """Sphere-trace rays (N, 3): distance ``t`` (N,), hit (N,) bool, primitive index (N,)."""
    reach = max(math.dist(ob.center, (0.0, 0.0, 0.0)) + ob.extent() for ob in scene.objects)
    t = (o.norm(dim=-1) - reach - 0.05).clamp_min(0)  # start on the scene's bounding sphere
    far = float(o.norm(dim=-1).max()) + reach + 0.1
    hit = torch.zeros(o.shape[0], dtype=torch.bool)
    active = torch.ones_like(hit)
    for _ in range(steps):
        if not bool(active.any()):
            break
        idx = active.nonzero().flatten()
        dist, _ = scene.sdf(o[idx] + t[idx, None] * d[idx])
        t[idx] += dist
        done = dist < eps
        hit[idx[done]] = True
        gone = t[idx] > far
        active[idx[done | gone]] = False
    hit &= t <= far
    _, which = scene.sdf(o + t[:, None] * d)
    return t, hit, which


def render(scene: Scene, c2w: Tensor, height: int, width: int, fov: float = 40.0,
           supersample: int = 1, geometry: bool = True) -> dict[str, Tensor]:  # fmt: skip
    """Render ``scene`` from cameras ``c2w`` (V, 4, 4).

    Returns ``rgb`` (V, 3, H, W) in [0, 1], ``depth`` (V, H, W) camera-space z of the hit (0 on background),
    ``silhouette`` (V, H, W) bool, ``object_id`` (V, H, W) long (-1 on background). ``supersample`` k > 1
    averages k x k colour samples per pixel (anti-aliasing); depth, silhouette and ids are taken at the pixel
    centres; ``geometry=False`` skips them (only ``rgb``: a second pass saved when supersampling).
    """
    if height < 1 or width < 1 or supersample < 1:
        raise ValueError(f"render needs a positive size and supersample; got {height}x{width}, {supersample}")
    c2w = c2w.double()
    v = c2w.shape[0]
    out: dict[str, Tensor] = {}
    for k in sorted({1, supersample} if geometry else {supersample}):
        h, w = height * k, width * k
        dc = pixel_directions(h, w, fov)  # (h, w, 3) camera frame, unit
        d = torch.einsum("vab,hwb->vhwa", c2w[:, :3, :3], dc).reshape(-1, 3)
        o = c2w[:, None, None, :3, 3].expand(v, h, w, 3).reshape(-1, 3)
        t, hit, which = _trace(scene, o, d)
        if k == 1 and geometry:
            depth = (t * -dc[..., 2].reshape(1, -1).expand(v, -1).reshape(-1)).where(hit, torch.zeros_like(t))
            out["depth"] = depth.reshape(v, h, w).float()
            out["silhouette"] = hit.reshape(v, h, w)
            out["object_id"] = torch.where(hit, which, torch.full_like(which, -1)).reshape(v, h, w)
        if k == supersample:
            out["rgb"] = _shade(scene, o, d, t, hit, which).reshape(v, h, w, 3).permute(0, 3, 1, 2)
            if k > 1:
                out["rgb"] = torch.nn.functional.avg_pool2d(out["rgb"], k)
            out["rgb"] = out["rgb"].float()
    return out


def _shade(scene: Scene, o: Tensor, d: Tensor, t: Tensor, hit: Tensor, which: Tensor) -> Tensor:
    rgb = torch.full((o.shape[0], 3), BACKGROUND, dtype=o.dtype)
    if not bool(hit.any()):
        return rgb
    light = torch.tensor(LIGHT, dtype=o.dtype)
    light = light / light.norm()
    p = o[hit] + t[hit, None] * d[hit]
    ids = which[hit]
    normal = torch.zeros_like(p)
    albedo = torch.zeros_like(p)
    e = 1e-4
    for k, ob in enumerate(scene.objects):
        sel = ids == k
        if not bool(sel.any()):
            continue
        q = p[sel]
        grad = torch.stack([ob.sdf(q + e * ax) - ob.sdf(q - e * ax)
                            for ax in torch.eye(3, dtype=q.dtype)], dim=-1)  # fmt: skip
        normal[sel] = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        albedo[sel] = torch.tensor(COLORS[ob.color], dtype=q.dtype)
    lambert = (normal @ light).clamp_min(0)
    rgb[hit] = albedo * (0.3 + 0.7 * lambert[:, None])
    return rgb

"""Procedural meshes for the ``shapes_lite`` dataset: trimesh primitives and compositions, with captions.

Every shape is built around the origin with its main axis on z ("up"), randomly proportioned, then
randomly scaled and rotated (about z by default, so "tall" keeps its meaning; ``rotation="so3"`` for
uniformly random 3D rotations). The caption describes the proportions ("a tall cylinder", "a flat box").
All randomness comes from a ``numpy.random.Generator`` the caller seeds per item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CLASSES = (
    "sphere",
    "box",
    "cylinder",
    "cone",
    "torus",
    "capsule",
    "box_on_cylinder",
    "cone_on_cylinder",
)


def _proportion(ratio: float, tall: str, flat: str, low: float = 0.7, high: float = 1.6) -> str:
    return tall if ratio >= high else flat if ratio <= low else ""


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _sphere(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    return trimesh.creation.icosphere(subdivisions=3, radius=1.0), "a sphere", {}


def _box(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    w, d, h = rng.uniform(0.4, 2.0, size=3)
    adj = _proportion(h / max(w, d), "tall", "flat")
    return trimesh.creation.box(extents=(w, d, h)), _article(f"{adj} box".strip()), {"extents": [w, d, h]}


def _cylinder(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    r, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 2.5)
    adj = _proportion(h / (2 * r), "tall", "flat")
    return (
        trimesh.creation.cylinder(radius=r, height=h, sections=48),
        _article(f"{adj} cylinder".strip()),
        {
            "radius": r,
            "height": h,
        },
    )


def _cone(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    r, h = rng.uniform(0.4, 1.0), rng.uniform(0.5, 2.5)
    adj = _proportion(h / (2 * r), "tall", "wide")
    mesh = trimesh.creation.cone(radius=r, height=h, sections=48)
    mesh.apply_translation((0, 0, -h / 3))  # centre of mass near the origin
    return mesh, _article(f"{adj} cone".strip()), {"radius": r, "height": h}


def _torus(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    major, ratio = 1.0, rng.uniform(0.15, 0.5)
    adj = "thin" if ratio < 0.25 else "thick" if ratio > 0.4 else ""
    mesh = trimesh.creation.torus(
        major_radius=major, minor_radius=major * ratio, major_sections=48, minor_sections=16
    )
    return mesh, _article(f"{adj} torus".strip()), {"minor_ratio": ratio}


def _capsule(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    r, h = rng.uniform(0.3, 0.7), rng.uniform(0.5, 2.5)
    adj = _proportion((h + 2 * r) / (2 * r), "long", "short", low=1.8, high=3.0)
    return (
        trimesh.creation.capsule(height=h, radius=r, count=[24, 24]),
        _article(f"{adj} capsule".strip()),
        {
            "radius": r,
            "height": h,
        },
    )


def _box_on_cylinder(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    r, h = rng.uniform(0.15, 0.4), rng.uniform(0.6, 1.6)
    w, d, t = rng.uniform(1.0, 2.0), rng.uniform(1.0, 2.0), rng.uniform(0.15, 0.4)
    leg = trimesh.creation.cylinder(radius=r, height=h, sections=32)
    top = trimesh.creation.box(extents=(w, d, t))
    top.apply_translation((0, 0, h / 2 + t / 2))
    mesh = trimesh.util.concatenate([leg, top])
    mesh.apply_translation((0, 0, -t / 2))
    return mesh, "a box on a cylinder", {"leg_height": h, "top": [w, d, t]}


def _cone_on_cylinder(rng: np.random.Generator) -> tuple[Any, str, dict]:
    import trimesh

    r, h, ch = rng.uniform(0.3, 0.6), rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.2)
    body = trimesh.creation.cylinder(radius=r, height=h, sections=32)
    tip = trimesh.creation.cone(radius=r * rng.uniform(1.0, 1.4), height=ch, sections=32)
    tip.apply_translation((0, 0, h / 2))
    mesh = trimesh.util.concatenate([body, tip])
    mesh.apply_translation((0, 0, -ch / 3))
    return mesh, "a cone on a cylinder", {"body_height": h, "tip_height": ch}


BUILDERS: dict[str, Callable[[np.random.Generator], tuple[Any, str, dict]]] = {
    "sphere": _sphere,
    "box": _box,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "capsule": _capsule,
    "box_on_cylinder": _box_on_cylinder,
    "cone_on_cylinder": _cone_on_cylinder,
}


def random_rotation(rng: np.random.Generator, rotation: str) -> np.ndarray:
    """A 3x3 rotation: identity ("none"), about z ("z") or uniform on SO(3) ("so3", via a random unit quaternion)."""
    if rotation == "none":
        return np.eye(3)
    if rotation == "z":
        a = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    if rotation == "so3":
        q = rng.normal(size=4)
        w, x, y, z = q / np.linalg.norm(q)
        return np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
    raise ValueError(f"rotation must be 'none', 'z' or 'so3'; got {rotation!r}")


def make_shape(
    cls: str, rng: np.random.Generator, rotation: str = "z", scale: tuple[float, float] = (0.5, 2.0)
):
    """A randomly proportioned, scaled and rotated mesh of class ``cls``, its caption and its parameters."""
    if cls not in BUILDERS:
        raise ValueError(f"unknown shape class {cls!r}; known: {', '.join(CLASSES)}")
    mesh, caption, params = BUILDERS[cls](rng)
    s = float(rng.uniform(*scale))
    transform = np.eye(4)
    transform[:3, :3] = random_rotation(rng, rotation) * s
    mesh.apply_transform(transform)
    return mesh, caption, {**params, "scale": s}

"""The renderer against closed-form answers: silhouette areas, depths, captions."""

import math

import pytest
import torch

from lumina_modalities.multiview.cameras import orbit, pixel_directions
from lumina_modalities.multiview.render import COLORS, KINDS, Primitive, Scene, random_scene, render

FOV = 40.0


def _focal(size: int) -> float:
    return size / 2 / math.tan(math.radians(FOV) / 2)


def test_sphere_silhouette_area_and_centre_depth():
    r, dist, size = 0.7, 3.5, 65
    out = render(Scene((Primitive("sphere", "red", (0, 0, 0), r),)), orbit(1, 0.0, dist), size, size, FOV)
    # a sphere on the optical axis projects to a disc of radius f tan(asin(r / D))
    expected = math.pi * (_focal(size) * math.tan(math.asin(r / dist))) ** 2
    assert out["silhouette"].sum().item() == pytest.approx(expected, rel=0.02)
    c = size // 2  # odd size: a pixel centre lies on the optical axis
    assert out["depth"][0, c, c].item() == pytest.approx(dist - r, abs=1e-3)
    assert out["object_id"][0, c, c].item() == 0 and out["object_id"][0, 0, 0].item() == -1
    assert out["depth"][0, 0, 0].item() == 0.0


def test_box_and_capsule_depths_and_offcentre_sphere():
    size, dist = 33, 3.0
    box = render(Scene((Primitive("box", "blue", (0, 0, 0), 0.5),)), orbit(1, 0.0, dist), size, size, FOV)
    assert box["depth"][0, 16, 16].item() == pytest.approx(dist - 0.8 * 0.5, abs=1e-3)  # the face at x = 0.4
    cap = render(
        Scene((Primitive("capsule", "green", (0, 0, 0), 0.5),)), orbit(1, 0.0, dist), size, size, FOV
    )
    assert cap["depth"][0, 16, 16].item() == pytest.approx(dist - 0.45 * 0.5, abs=1e-3)
    # the torus has a hole: seen from straight above, the centre pixel sees the background
    top = render(Scene((Primitive("torus", "cyan", (0, 0, 0), 0.6),)), orbit(1, 89.0, dist), size, size, FOV)
    assert not bool(top["silhouette"][0, 16, 16])
    assert top["silhouette"].sum() > 20


def test_depth_is_consistent_with_the_rays():
    """Every hit point lies on the surface: the SDF at camera + depth * ray / |ray_z| is ~0."""
    scene = Scene(
        (Primitive("torus", "red", (0.3, 0, 0), 0.5), Primitive("box", "blue", (-0.6, 0.2, 0), 0.35))
    )
    c2w = orbit(3, 25.0, 3.2, azimuth0=10.0)
    out = render(scene, c2w, 24, 24, FOV)
    dc = pixel_directions(24, 24, FOV)
    for v in range(3):
        hit = out["silhouette"][v]
        d_cam = dc[hit] / (-dc[hit][:, 2:3])  # z-depth 1 along the ray
        pts = (
            c2w[v, :3, 3].double()
            + (out["depth"][v][hit].double()[:, None] * d_cam) @ c2w[v, :3, :3].double().T
        )
        dist, _ = scene.sdf(pts)
        assert dist.abs().max().item() < 2e-3


def test_colours_and_background():
    out = render(Scene((Primitive("sphere", "yellow", (0, 0, 0), 0.8),)), orbit(2, 20.0, 3.2), 32, 32, FOV, 2)
    rgb = out["rgb"]
    assert rgb.shape == (2, 3, 32, 32) and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(rgb[:, :, 0, 0], torch.ones(2, 3))  # white background
    lit = rgb[0][:, out["silhouette"][0]].mean(dim=1)
    albedo = torch.tensor(COLORS["yellow"])
    assert torch.nn.functional.cosine_similarity(lit, albedo, dim=0) > 0.99  # Lambert only scales the albedo


def test_random_scenes_and_captions():
    gen = torch.Generator().manual_seed(3)
    scenes = [random_scene(gen, max_objects=2) for _ in range(40)]
    assert {len(s.objects) for s in scenes} == {1, 2}
    for s in scenes:
        words = s.caption().split(" beside ")
        assert len(words) == len(s.objects)
        for w, o in zip(words, s.objects, strict=True):
            assert w == f"a {o.color} {o.kind}"
        if len(s.objects) == 2:
            assert s.objects[0].color != s.objects[1].color
        assert Scene.from_dict(s.to_dict()) == s
        assert 0 <= s.class_id() < len(COLORS) * len(KINDS)
    assert (
        Scene((Primitive("box", "red"), Primitive("sphere", "blue"))).caption()
        == "a red box beside a blue sphere"
    )
    with pytest.raises(ValueError, match="unknown primitive kind"):
        Primitive("cone", "red")

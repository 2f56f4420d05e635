"""Cameras: rigidity checks, relative poses, Plücker rays and their invariance under a rotated orbit."""

import math

import pytest
import torch

from lumina_modalities.multiview.cameras import (
    check_rigid,
    orbit,
    plucker,
    project,
    relative_to_first,
)
from lumina_modalities.multiview.plugin import MultiviewPlugin, attach_cameras


def _rotation(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    k = torch.tensor(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64
    )
    rot = torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = rot
    return out


def test_orbit_cameras_are_rigid_and_look_at_the_origin():
    c2w = orbit(6, 30.0, 2.5, azimuth0=17.0)
    check_rigid(c2w)
    pix, front = project(torch.zeros(1, 3), c2w, 32, 48, 40.0)
    assert bool(front.all())
    assert torch.allclose(pix[:, 0], torch.tensor([16.0, 24.0]).expand(6, 2), atol=1e-4)
    assert torch.allclose(c2w[:, :3, 3].norm(dim=-1), torch.full((6,), 2.5), atol=1e-5)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.__setitem__((0, 0), 2.0), "not a rigid"),  # a scale
        (lambda m: m.__setitem__((0, 1), 0.4), "not a rigid"),  # a shear
        (lambda m: m.__setitem__((3, 2), 1.0), "not a rigid"),  # a projective bottom row
        (lambda m: m[:3, 0].mul_(-1), "not a rigid"),  # a reflection (det -1)
        (lambda m: m.__setitem__((1, 3), float("nan")), "NaN"),
    ],
)
def test_non_rigid_cameras_are_refused(edit, message):
    c2w = orbit(3, 20.0, 3.0).double()
    edit(c2w[1])
    with pytest.raises(ValueError, match=message):
        check_rigid(c2w)


def test_relative_cameras_cancel_a_rigid_motion_of_the_rig():
    c2w = orbit(4, 20.0, 3.0).double()
    motion = _rotation((0.3, -0.5, 1.0), 1.1)
    motion[:3, 3] = torch.tensor([0.4, -1.0, 2.0], dtype=torch.float64)
    rel = relative_to_first(c2w)
    assert torch.allclose(rel[0], torch.eye(4), atol=1e-6)
    assert torch.allclose(relative_to_first(motion @ c2w), rel, atol=1e-5)


def test_plucker_rays_are_valid_and_resolution_independent():
    c2w = orbit(2, 20.0, 3.0)
    rays = plucker(c2w, 16, 16, 40.0)
    d, m = rays[:, :3], rays[:, 3:]
    assert torch.allclose(d.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    assert (d * m).sum(dim=1).abs().max() < 1e-5  # the moment is perpendicular to the direction
    # every ray passes through its camera centre: o x d = m
    o = c2w[:, :3, 3][:, :, None, None].expand_as(d)
    assert torch.allclose(torch.linalg.cross(o, d, dim=1), m, atol=1e-5)
    # a 2x finer map averages back to nearly the coarse one (the same rays, sampled more densely)
    fine = torch.nn.functional.avg_pool2d(plucker(c2w, 32, 32, 40.0), 2)
    assert (fine - rays).abs().max() < 2e-3


@pytest.mark.parametrize("camera", ["plucker", "matrix"])
def test_camera_conditioning_is_the_same_for_a_rotated_orbit(camera):
    plugin = MultiviewPlugin(views=4, size=16, patch=4, camera=camera)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    a = attach_cameras(images, orbit(4, 20.0, 3.2, azimuth0=0.0))
    b = attach_cameras(images, orbit(4, 20.0, 3.2, azimuth0=73.0))  # the rig turned about the object
    tilt = _rotation((1.0, 0.2, 0.0), 0.6).float()
    c = attach_cameras(images, tilt @ orbit(4, 20.0, 3.2))  # turned about another axis
    ta, tb, tc = (plugin.tokenize([x]).token_cond for x in (a, b, c))
    assert torch.allclose(ta, tb, atol=1e-4) and torch.allclose(ta, tc, atol=1e-4)
    # ... while another orbit (lower elevation, views closer together) is told apart
    other = plugin.tokenize([attach_cameras(images, orbit(4, 5.0, 3.2, span=180.0))]).token_cond
    assert (ta - other).abs().max() > 0.1

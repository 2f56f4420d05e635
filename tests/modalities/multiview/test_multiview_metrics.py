"""The checkers against images with known answers."""

import math

import pytest
import torch

from lumina_modalities.multiview import MultiviewScenes
from lumina_modalities.multiview.cameras import orbit
from lumina_modalities.multiview.datasets import ADHERENCE_CHANCE
from lumina_modalities.multiview.metrics import adherence, hull_consistency, iou, psnr, silhouette, ssim
from lumina_modalities.multiview.plugin import cameras_of
from lumina_modalities.multiview.render import Primitive, Scene, render


def test_psnr_ssim_iou_known_values():
    a = torch.rand(2, 3, 16, 16) * 0.8
    assert torch.allclose(psnr(a, a + 0.1), torch.full((2,), 20.0), atol=1e-3)  # MSE 0.01 -> 20 dB
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert (ssim(a, torch.rand(2, 3, 16, 16)) < 0.3).all()
    m1 = torch.zeros(1, 4, 4, dtype=torch.bool)
    m1[0, :2] = True  # 8 pixels
    m2 = torch.zeros(1, 4, 4, dtype=torch.bool)
    m2[0, 1:3] = True  # 8 pixels, 4 shared
    assert iou(m1, m2).item() == pytest.approx(4 / 12)
    white = torch.ones(1, 3, 4, 4)
    white[0, :, 0, 0] = torch.tensor([0.9, 0.2, 0.2])
    assert silhouette(white).sum().item() == 1


def test_hull_consistency_tells_one_object_from_unrelated_views():
    c2w = orbit(4, 20.0, 3.2)
    sphere = render(Scene((Primitive("sphere", "red", (0, 0, 0), 0.6),)), c2w, 32, 32)["silhouette"]
    true = hull_consistency(sphere, c2w, 40.0)
    # three other views carve a hull a little larger than the sphere (0.75 here; 0.86 from 7 of 8 views)
    assert (true > 0.7).all()
    # the same silhouettes claimed from other places: a sphere that moves between views is inconsistent
    moved = torch.stack([render(Scene((Primitive("sphere", "red", (0.5 * math.cos(v), 0.5 * math.sin(v), 0), 0.6),)),
                                c2w[v : v + 1], 32, 32)["silhouette"][0] for v in range(4)])  # fmt: skip
    assert hull_consistency(moved, c2w, 40.0).mean() < true.mean() - 0.3
    assert torch.isnan(
        hull_consistency(sphere[:1], c2w[:1], 40.0)
    ).all()  # one view: nothing to check against


def test_adherence_reads_colour_and_shape_from_the_views():
    c2w = orbit(4, 20.0, 3.2, azimuth0=30.0)
    truth_scene = Scene((Primitive("torus", "green", (0, 0, 0), 0.65),))
    views = render(truth_scene, c2w, 32, 32, supersample=2)["rgb"]
    assert adherence(views, truth_scene, c2w, 40.0) == {"color_acc": 1.0, "shape_acc": 1.0, "adherence": 1.0}
    # the same views judged against a caption of another colour and shape
    other = Scene((Primitive("box", "purple", (0, 0, 0), 0.65),))
    assert adherence(views, other, c2w, 40.0)["adherence"] == 0.0
    # right colour, wrong shape
    box = render(Scene((Primitive("box", "green", (0, 0, 0), 0.65),)), c2w, 32, 32, supersample=2)["rgb"]
    got = adherence(box, truth_scene, c2w, 40.0)
    assert got["color_acc"] == 1.0 and got["shape_acc"] == 0.0


def test_dataset_score_on_truth_and_on_swapped_items():
    data = MultiviewScenes(views=3, size=16, max_objects=2, length=3, split="val", radius=2.6)
    items = [data[i] for i in range(3)]
    real = data.score([it["sample"] for it in items], items)
    assert list(real)[:2] == ["adherence", "chance"] and real["chance"] == pytest.approx(ADHERENCE_CHANCE)
    assert real["adherence"] == 1.0 and real["silhouette_iou"] == 1.0 and real["psnr"] == 60.0
    swapped = data.score([items[(i + 1) % 3]["sample"] for i in range(3)], items)
    assert swapped["adherence"] < 0.6 and swapped["psnr"] < 25
    # cameras travel inside the samples: the ones an item was rendered from
    assert torch.allclose(cameras_of(items[0]["sample"], 3).float(), data.scene(0)[1], atol=1e-6)

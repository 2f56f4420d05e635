"""Image datasets with ground truth: procedural shapes + analytic checker, real digits + classifier."""

from __future__ import annotations

import pytest
import torch

from lumina_core.registry import DATASETS
from lumina_modalities.image.shapes import ShapesDataset, describe, parse_caption, render, shape_coverage


def _items(ds, n):
    return [ds[i] for i in range(n)]


def test_shapes_registered_and_deterministic():
    assert DATASETS.get("shapes") is ShapesDataset and ShapesDataset.modality == "image"
    a, b = ShapesDataset(length=50, seed=3), ShapesDataset(length=50, seed=3)
    for i in (0, 7, 49):
        ia, ib = a[i], b[i]
        assert torch.equal(ia["sample"], ib["sample"]) and ia["condition"] == ib["condition"]
    val = ShapesDataset(length=50, seed=3, split="val")
    assert any(not torch.equal(a[i]["sample"], val[i]["sample"]) for i in range(5))
    item = a[0]
    assert item["sample"].shape == (3, 32, 32)
    assert item["sample"].min() >= -1 and item["sample"].max() <= 1
    assert parse_caption(item["condition"]) == {
        k: item["meta"][k] for k in ("shape", "color", "position", "size")
    }


def test_shapes_class_ids_round_trip():
    ds = ShapesDataset(length=40, condition="class")
    assert ds.num_classes == 3 * 4 * 5
    for i in range(40):
        item = ds[i]
        assert ds.class_attributes(item["condition"]) == (
            item["meta"]["shape"],
            item["meta"]["color"],
            item["meta"]["position"],
        )


def test_rendering_is_exact_area_coverage():
    # a large circle's covered area approaches pi r^2
    cov = shape_coverage("circle", 32.0, 32.0, 20.0, 64, 64)
    assert abs(cov.sum() - torch.pi * 400) / (torch.pi * 400) < 0.01
    cov = shape_coverage("square", 32.0, 32.0, 20.0, 64, 64)  # same area as the circle by construction
    assert abs(cov.sum() - torch.pi * 400) / (torch.pi * 400) < 0.02


@pytest.mark.parametrize("size,sizes", [(32, False), (32, True), (64, False)])
def test_checker_passes_ground_truth_and_fails_wrong_captions(size, sizes):
    ds = ShapesDataset(size=size, length=240, split="val", sizes=sizes)
    items = _items(ds, 240)
    samples = [it["sample"] for it in items]
    right = ds.score(samples, items)
    assert right["found"] == 1.0
    assert right["adherence"] >= 0.97
    assert min(right["shape_acc"], right["color_acc"], right["position_acc"]) >= 0.97
    wrong = ds.score(samples, items[1:] + items[:1])  # each image judged against another image's caption
    assert wrong["adherence"] < 0.1
    assert wrong["adherence"] < 5 * right["chance_adherence"] + 0.05


def test_checker_reads_captions_and_class_ids_without_meta():
    ds = ShapesDataset(length=30, split="test")
    items = _items(ds, 30)
    samples = [it["sample"] for it in items]
    text_only = [{"condition": it["condition"]} for it in items]
    assert ds.score(samples, text_only)["adherence"] >= 0.95
    cds = ShapesDataset(length=30, split="test", condition="class")
    class_only = [{"condition": cds[i]["condition"]} for i in range(30)]
    assert cds.score(samples, class_only)["adherence"] >= 0.95


def test_checker_on_hand_made_images():
    from lumina_modalities.image.shapes import ShapeSpec

    for shape in ("circle", "square", "triangle"):
        for pos, (cy, cx) in {"left": (16, 7), "bottom": (25, 16), "center": (16, 16)}.items():
            seen = describe(render(ShapeSpec(shape, "blue", pos, None, cy, cx, 5.0), 32))
            assert (seen["shape"], seen["color"], seen["position"]) == (shape, "blue", pos)
    blank = torch.full((3, 32, 32), 0.94 * 2 - 1)
    assert describe(blank) is None
    score = ShapesDataset(length=2).score(
        [blank], [{"meta": {"shape": "circle", "color": "red", "position": "left"}}]
    )
    assert score["adherence"] == 0.0 and score["found"] == 0.0


def test_shapes_rejects_bad_parameters():
    with pytest.raises(ValueError, match="split"):
        ShapesDataset(split="training")
    with pytest.raises(ValueError, match="colors"):
        ShapesDataset(colors=["purple"])


def test_digits_classifier_reads_real_held_out_digits():
    from lumina_modalities.image.digits import DigitsDataset

    assert DATASETS.get("digits") is DigitsDataset
    ds = DigitsDataset(size=16, split="val", condition="class")
    items = _items(ds, len(ds))
    assert items[0]["sample"].shape == (1, 16, 16)
    samples = [it["sample"] for it in items]
    assert ds.score(samples, items)["digit_acc"] >= 0.95
    shifted = [{"meta": {"label": (it["meta"]["label"] + 1) % 10}} for it in items]
    assert ds.score(samples, shifted)["digit_acc"] < 0.1
    text = DigitsDataset(size=32, split="train", condition="text", channels=3)[0]
    assert text["condition"] == f"a handwritten {text['meta']['label']}" and text["sample"].shape == (
        3,
        32,
        32,
    )


def test_digit_precision_is_label_free_and_separates_real_digits_from_failures():
    """``digit_precision`` (for unconditional samples): real held-out digits score about its reference 0.95
    whatever labels the items carry; noise and blank images score 0."""
    from lumina_modalities.image.digits import DigitsDataset

    ds = DigitsDataset(size=8, split="val", condition="none")
    items = _items(ds, len(ds))
    real = [it["sample"] for it in items]
    scores = ds.score(real, items)
    assert scores["reference_precision"] == 0.95
    assert scores["digit_precision"] == pytest.approx(0.95, abs=0.01)
    shifted = [{"meta": {"label": (it["meta"]["label"] + 1) % 10}} for it in items]
    assert ds.score(real, shifted)["digit_precision"] == scores["digit_precision"]
    g = torch.Generator().manual_seed(0)
    noise = [torch.rand(x.shape, generator=g) * 2 - 1 for x in real]
    assert ds.score(noise, items)["digit_precision"] == 0.0
    assert ds.score([torch.full_like(x, -1.0) for x in real], items)["digit_precision"] == 0.0

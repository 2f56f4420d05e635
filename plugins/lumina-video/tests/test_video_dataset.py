"""moving_shapes: seeded items with ground truth, and a checker that is right on truth and wrong on lies."""

from __future__ import annotations

import pytest
import torch
from lumina_video.checker import COLOURS, DIRECTIONS, blob_centroids, read_clip
from lumina_video.moving_shapes import MovingShapes

from lumina_core.registry import DATASETS

OPPOSITE = {"right": "left", "left": "right", "up": "down", "down": "up"}


@pytest.fixture(scope="module")
def dataset():
    return DATASETS.build({"name": "moving_shapes", "params": {"num": 96, "seed": 3}})


@pytest.fixture(scope="module")
def items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_items_are_seeded_per_index(dataset):
    again = MovingShapes(num=96, seed=3)
    for i in (0, 17, 95):
        assert torch.equal(dataset[i]["sample"], again[i]["sample"])
        assert dataset[i]["meta"] == again[i]["meta"]
    other = MovingShapes(num=96, seed=4)
    assert not torch.equal(dataset[5]["sample"], other[5]["sample"])
    # the held-out split (the training API passes split="val") never repeats the training stream
    val = DATASETS.build({"name": "moving_shapes", "params": {"num": 96, "seed": 3}}, split="val")
    assert all(val[i]["meta"]["centres"] != dataset[i]["meta"]["centres"] for i in range(8))
    with pytest.raises(IndexError):
        dataset[96]


def test_items_have_captions_labels_and_ground_truth(dataset, items):
    assert DATASETS.get("moving_shapes").modality == "video"
    for it in items:
        m = it["meta"]
        assert it["condition"] == f"a {m['colour']} {m['shape']} moving {m['direction']}"
        assert it["sample"].shape == (8, 3, 16, 16)
        assert it["sample"].min() >= -1 and it["sample"].max() <= 1
        assert m["label"] == dataset.label(m["colour"], m["shape"], m["direction"])
    labels = {
        (it["meta"]["colour"], it["meta"]["shape"], it["meta"]["direction"]): it["meta"]["label"]
        for it in items
    }
    assert len(set(labels.values())) == len(labels)  # one class per attribute triple
    assert {it["meta"]["direction"] for it in items} == set(DIRECTIONS)
    assert {it["meta"]["colour"] for it in items} == set(COLOURS)
    assert dataset.conditions()[:3] == [items[i]["condition"] for i in range(3)]


def test_rendered_centres_and_areas_match_the_ground_truth(dataset, items):
    """Known answer: each frame's brightness mass is the shape's area (nothing clipped at the border) and its
    centre of mass is the recorded centre (sub-pixel)."""
    h = torch.arange(16).float() + 0.5
    for it in items[:32]:
        m = it["meta"]
        cover = ((it["sample"] + 1) / 2).amax(dim=1)  # (T, H, W) coverage in [0, 1]
        mass = cover.sum(dim=(1, 2))
        area = torch.pi * (dataset.radius * m["size"]) ** 2
        assert torch.allclose(mass, torch.full_like(mass, area), rtol=0.04), (mass, area)
        cent = torch.stack([(cover.sum(1) * h).sum(1), (cover.sum(2) * h).sum(1)], dim=1) / mass[:, None]
        truth = torch.tensor(m["centres"])
        assert torch.allclose(cent, truth, atol=0.05), (cent - truth).abs().max()
        assert torch.allclose(blob_centroids(it["sample"])[0], truth, atol=0.05)
        dx, dy = DIRECTIONS[m["direction"]]
        step = truth[1:] - truth[:-1]
        assert torch.allclose(step, torch.tensor([dx, dy]) * m["speed"], atol=1e-4)


def test_condition_modes_and_mixed_lengths():
    ds = MovingShapes(num=16, frames=[4, 8, 12], size=[16, 32], condition="class", seed=1)
    sizes = {(it["sample"].shape[0], it["sample"].shape[-1]) for it in (ds[i] for i in range(16))}
    assert len(sizes) > 2
    assert all(
        isinstance(ds[i]["condition"], int) and 0 <= ds[i]["condition"] < ds.num_classes for i in range(16)
    )
    assert MovingShapes(num=2, condition="none")[0]["condition"] is None


def test_bad_parameters_are_all_reported_at_once():
    with pytest.raises(ValueError) as err:
        MovingShapes(colours=["red", "mauve"], directions=["sideways"], condition="audio")
    text = str(err.value)
    assert "mauve" in text and "sideways" in text and "audio" in text


# -- the checker ------------------------------------------------------------------------------------------


def test_checker_is_perfect_on_ground_truth(dataset, items):
    scores = dataset.score([it["sample"] for it in items], items)
    assert scores["direction_acc"] == 1.0
    assert scores["colour_acc"] == 1.0
    assert scores["adherence"] == 1.0
    assert scores["blob_found"] == 1.0
    assert scores["direction_chance"] == 0.25 and scores["colour_chance"] == pytest.approx(1 / 6)


def test_checker_rejects_mismatched_captions(dataset, items):
    # every attribute wrong: the checker must score zero
    lies = []
    for it in items:
        m = dict(it["meta"])
        names = list(COLOURS)
        m["colour"] = names[(names.index(m["colour"]) + 1) % len(names)]
        m["direction"] = OPPOSITE[m["direction"]]
        lies.append({**it, "meta": m})
    scores = dataset.score([it["sample"] for it in items], lies)
    assert scores["direction_acc"] == 0.0 and scores["colour_acc"] == 0.0
    # captions of other items: near chance, far below the truth
    rolled = items[7:] + items[:7]
    scores = dataset.score([it["sample"] for it in items], rolled)
    assert scores["direction_acc"] < 0.45 and scores["colour_acc"] < 0.4
    assert scores["adherence"] < 0.15


def test_checker_reads_transformed_clips_as_transformed(items):
    """Reversing time flips the direction; transposing H and W turns right into down; channel swaps recolour."""
    transpose = {"right": "down", "down": "right", "left": "up", "up": "left"}
    for it in items[:16]:
        clip, m = it["sample"], it["meta"]
        assert read_clip(clip.flip(0)).direction == OPPOSITE[m["direction"]]
        assert read_clip(clip.transpose(-1, -2)).direction == transpose[m["direction"]]
        r, g, b = COLOURS[m["colour"]]
        rotated = next(name for name, rgb in COLOURS.items() if rgb == (b, r, g))
        assert read_clip(clip[:, [2, 0, 1]]).colour == rotated


def test_checker_on_blank_and_static_clips():
    blank = torch.full((8, 3, 16, 16), -1.0)
    reading = read_clip(blank)
    assert reading.direction == "none" and reading.colour == "none"
    still = MovingShapes(num=1, speed=(1e-3, 1e-3), seed=0)[0]
    assert read_clip(still["sample"]).direction == "static"
    assert read_clip(still["sample"]).colour == still["meta"]["colour"]

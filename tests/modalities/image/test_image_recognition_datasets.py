"""Recognition datasets of the image plugin: a user's labelled folder (class folders or a labels file) and
handwritten digits at several resolutions; bad input gives errors that name the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lumina_modalities.image.digits_labels import LabelledDigitsDataset
from lumina_modalities.image.labelled import LabelledImagesDataset


def _png(path, value: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def class_folders(tmp_path):
    """cat: 5 dark images, dog: 5 bright ones (the class is recoverable from the pixels)."""
    for i in range(5):
        _png(tmp_path / "cat" / f"c{i}.png", 20 + i)
        _png(tmp_path / "dog" / "sub" / f"d{i}.png", 230 - i)  # nested folders belong to their top class
    return tmp_path


def test_class_folders_give_ids_in_declared_order_and_hold_out_per_class(class_folders):
    train = LabelledImagesDataset(str(class_folders), classes=["dog", "cat"], size=16, split="train")
    val = LabelledImagesDataset(str(class_folders), classes=["dog", "cat"], size=16, split="val")
    assert len(train) == 8 and len(val) == 2  # every 5th image of each class held out
    assert sorted(it["meta"]["label"] for it in (val[i] for i in range(2))) == ["cat", "dog"]
    for ds in (train, val):
        for i in range(len(ds)):
            it = ds[i]
            assert it["sample"].shape == (3, 16, 16)
            bright = float(it["sample"].mean()) > 0
            assert it["condition"] == (0 if bright else 1)  # dog = 0, cat = 1 as declared
            assert it["meta"]["label"] == ("dog" if bright else "cat")


def test_classes_default_to_sorted_folders(class_folders):
    ds = LabelledImagesDataset(str(class_folders), size=8, val_fraction=0)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 10


def test_labels_file(tmp_path):
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png", 40 * i)
    (tmp_path / "labels.csv").write_text(
        "path,label\n# a comment\nimg/0.png,zero\nimg/1.png,one\nimg/2.png\tzero\nimg/3.png,one\n"
    )
    ds = LabelledImagesDataset(
        str(tmp_path), labels="labels.csv", classes=["zero", "one"], size=8, val_fraction=0
    )
    assert [ds[i]["condition"] for i in range(len(ds))] == [0, 0, 1, 1]
    assert [ds[i]["meta"]["path"].rsplit("/", 1)[-1] for i in range(len(ds))] == [
        "0.png",
        "2.png",
        "1.png",
        "3.png",
    ]


def test_label_outside_declared_classes_is_an_error(class_folders, tmp_path):
    with pytest.raises(ValueError, match=r"labels outside the declared classes: \['dog'\]"):
        LabelledImagesDataset(str(class_folders), classes=["cat", "bird"])
    (class_folders / "labels.csv").write_text("cat/c0.png,cat\ncat/c1.png,horse\n")
    with pytest.raises(ValueError, match=r"outside the declared classes: \['horse'\]"):
        LabelledImagesDataset(str(class_folders), labels="labels.csv", classes=["cat", "dog"])


def test_declared_class_without_images_and_empty_folder_are_errors(class_folders):
    with pytest.raises(ValueError, match=r"declared classes with no images .*\['bird'\]"):
        LabelledImagesDataset(str(class_folders), classes=["cat", "dog", "bird"])
    (class_folders / "bird").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*bird has no images"):
        LabelledImagesDataset(str(class_folders))


def test_labels_file_problems_name_the_line(class_folders):
    (class_folders / "labels.csv").write_text("cat/c0.png,cat\ncat/missing.png,cat\njust-one-field\n")
    with pytest.raises(ValueError, match=r"line 2: image .*missing.png does not exist; line 3: expected"):
        LabelledImagesDataset(str(class_folders), labels="labels.csv")
    with pytest.raises(FileNotFoundError, match="labels file"):
        LabelledImagesDataset(str(class_folders), labels="nope.csv")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        LabelledImagesDataset(str(class_folders / "nothing"))


def test_undecodable_images_are_skipped_and_counted(class_folders):
    (class_folders / "cat" / "broken.png").write_bytes(b"not an image")
    from lumina_core.data import build_dataset

    ds = build_dataset("labelled_images", {"root": str(class_folders), "size": 8, "val_fraction": 0}, "train")
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 11 and all(it["sample"].shape == (3, 8, 8) for it in items)
    assert ds.skipped == 1 and ds.skipped_names[0].endswith("broken.png")


def test_digits_at_several_sizes():
    ds = LabelledDigitsDataset(sizes=[16, 24, 32], split="val")
    assert len(ds) == 297 * 3
    a, b, c = ds[0], ds[1], ds[2]
    assert [x["sample"].shape[-1] for x in (a, b, c)] == [16, 24, 32]
    assert a["condition"] == b["condition"] == c["condition"] == int(a["meta"]["label"])
    # the same digit: downsampling the 32 px image recovers the 16 px one closely
    small = torch.nn.functional.interpolate(c["sample"][None], size=(16, 16), mode="area")[0]
    assert float((small - a["sample"]).abs().mean()) < 0.1
    with pytest.raises(ValueError, match="at least 8 pixels"):
        LabelledDigitsDataset(sizes=[4, 16])


def test_read_scale_keeps_a_files_own_size_within_its_range(tmp_path):
    """``lumina predict`` reads a file at its own size when that is 1-2x the training size (``read_scale``),
    upsamples a smaller one and downsamples a larger one; without ``read_scale`` every file is read at
    ``image_size``."""
    from lumina_modalities.image import ImagePlugin

    rng = np.random.default_rng(0)
    files = {}
    for name, (h, w) in {"small": (16, 16), "native": (48, 48), "big": (100, 100), "wide": (50, 70)}.items():
        pixels = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        files[name] = (tmp_path / f"{name}.png", pixels)
    ranged = ImagePlugin(patch_size=4, channels=1, image_size=32, fid=False, read_scale=[1, 2])
    fixed = ImagePlugin(patch_size=4, channels=1, image_size=32, fid=False)
    expected = {"small": 32, "native": 48, "big": 64, "wide": 48}  # wide: 50 px rounded down to 12 patches
    for name, side in expected.items():
        assert ranged.read_file(files[name][0]).shape == (1, side, side)
        assert fixed.read_file(files[name][0]).shape == (1, 32, 32)
    # a file already within the range is read pixel for pixel (no resampling)
    native = ranged.read_file(files["native"][0])[0].numpy()
    np.testing.assert_allclose(native, files["native"][1] / 255.0 * 2 - 1, atol=1e-5)
    with pytest.raises(ValueError, match="read_scale must be"):
        ImagePlugin(patch_size=4, channels=1, image_size=32, fid=False, read_scale=[2, 1])


def test_shapes_at_several_resolutions_draw_each_item_once_per_size():
    """``resolutions``: drawing i at every side, the same drawing the single-size set renders at that side."""
    from lumina_modalities.image.shapes import ShapesDataset

    multi = ShapesDataset(length=3, condition="none", resolutions=[16, 32])
    assert len(multi) == 6
    for i in range(3):
        for j, side in enumerate((16, 32)):
            item, single = multi[2 * i + j], ShapesDataset(size=side, length=3, condition="none")[i]
            assert item["sample"].shape == (3, side, side)
            torch.testing.assert_close(item["sample"], single["sample"])
            assert item["meta"]["shape"] == single["meta"]["shape"]
    assert len(ShapesDataset(length=3, condition="none")) == 3  # default: one size
    with pytest.raises(ValueError, match="resolutions must be at least 12"):
        ShapesDataset(length=3, resolutions=[8, 32])


def test_digits_per_class_keeps_a_balanced_fixed_subset_of_the_training_split_only():
    """``per_class``: the first N digits of each class in the training split's order - balanced, the same
    every time, a subset of the full split; the held-out split stays all 297 digits (also through the recipe
    path, where ``val_params`` are merged over ``params``)."""
    from lumina_core.data import build_dataset

    full = LabelledDigitsDataset(size=8)
    few = LabelledDigitsDataset(size=8, per_class=10)
    assert len(few) == 100 and np.bincount(few.labels, minlength=10).tolist() == [10] * 10
    again = LabelledDigitsDataset(size=8, per_class=10)
    np.testing.assert_array_equal(few.images, again.images)
    np.testing.assert_array_equal(few.labels, again.labels)
    # the first 10 of each class, in the split's order
    for d in range(10):
        first = np.flatnonzero(full.labels == d)[:10]
        np.testing.assert_array_equal(few.images[few.labels == d], full.images[first])
    assert torch.equal(few[0]["sample"], full[int(np.flatnonzero(full.labels == few.labels[0])[0])]["sample"])
    params = {"size": 8, "channels": 1, "per_class": 10}
    assert len(build_dataset("digits_labelled", params, "train")) == 100
    assert len(build_dataset("digits_labelled", params, "val")) == 297
    assert len(build_dataset("digits_labelled", params, "val", {"size": 8})) == 297
    assert len(LabelledDigitsDataset(size=8, split="val", per_class=5)) == 297


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_digits_per_class_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=rf"per_class must be a positive integer .*got {bad!r}"):
        LabelledDigitsDataset(size=8, per_class=bad)


def test_digits_per_class_beyond_the_smallest_class_names_what_each_has():
    with pytest.raises(ValueError, match=r"per_class=136 is more than .*at most 135 .*\{2: 135\}"):
        LabelledDigitsDataset(size=8, per_class=136)
    assert len(LabelledDigitsDataset(size=8, per_class=135)) == 1350
    with pytest.raises(ValueError, match="per_class=500"):  # checked for the held-out split too
        LabelledDigitsDataset(size=8, split="val", per_class=500)

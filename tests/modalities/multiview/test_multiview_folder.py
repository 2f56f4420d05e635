"""A user's folder of posed views: reading, and corrupt scenes skipped and counted with a reason."""

import json

import pytest
import torch

from lumina_modalities.multiview import MultiviewFolder, MultiviewScenes
from lumina_modalities.multiview.datasets import write_scene_folder


@pytest.fixture
def folder(tmp_path):
    data = MultiviewScenes(views=3, size=16, length=5, supersample=1)
    for i in range(5):
        write_scene_folder(data, i, tmp_path / f"scene_{i}")
    return tmp_path, data


def _edit(path, fn):
    spec = json.loads(path.read_text())
    fn(spec)
    path.write_text(json.dumps(spec))


def test_folder_reads_what_was_written(folder):
    root, data = folder
    ds = MultiviewFolder(str(root))
    assert len(ds) == 5
    item, truth = ds[2], data[2]
    assert item["condition"] == truth["condition"] and item["meta"]["fov"] == data.fov
    assert item["sample"].shape == truth["sample"].shape
    assert (item["sample"][:, :3] - truth["sample"][:, :3]).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit PNG
    assert torch.allclose(item["sample"][:, 3:], truth["sample"][:, 3:], atol=1e-6)
    assert MultiviewFolder(str(root), size=8, views=2)[0]["sample"].shape == (2, 15, 8, 8)


def test_corrupt_scenes_are_skipped_and_counted(folder):
    root, _ = folder
    _edit(root / "scene_1" / "cameras.json", lambda s: s["views"][1]["c2w"][0].__setitem__(0, 3.0))  # a scale
    (root / "scene_2" / "001.png").unlink()  # a missing view
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "scene_3" / "002.png")  # views of different sizes
    ds = MultiviewFolder(str(root))
    assert ds[1]["meta"]["name"] == "scene_4"  # scenes 1-3 are skipped on the way
    assert ds.skipped == 3 and sorted(ds.stats.names) == ["scene_1", "scene_2", "scene_3"]
    assert [ds[i]["meta"]["name"] for i in (0, 2, 3, 4)] == ["scene_0", "scene_4", "scene_4", "scene_4"]
    reasons = " ".join(ds.stats.reasons)
    assert "not a rigid" in reasons and "missing" in reasons and "different sizes" in reasons
    with pytest.raises(ValueError, match="not a rigid"):
        ds.read(1)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MultiviewFolder(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no scene under"):
        MultiviewFolder(str(tmp_path))

"""`lumina data pack --modality multiview`: scene folders into shards, read back by `multiview_shards` as the
folder reads them; scenes that could never be read are skipped at packing with their reason."""

import json

import pytest
import torch

from lumina_core.cli.main import main
from lumina_core.data import build_dataset
from lumina_modalities.multiview import MultiviewFolder, MultiviewScenes
from lumina_modalities.multiview.datasets import write_scene_folder
from lumina_modalities.multiview.listing import list_scenes


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def scenes(tmp_path):
    data = MultiviewScenes(views=3, size=16, length=5, supersample=1, max_objects=2)
    for i in range(5):
        write_scene_folder(data, i, tmp_path / "src" / "set.a" / f"scene_{i}")
    return tmp_path / "src", data


def test_scene_folders_pack_and_read_back_as_the_folder_reads_them(scenes, tmp_path, capsys):
    src, data = scenes
    out = tmp_path / "shards"
    assert main(["data", "pack", str(src), str(out), "--modality", "multiview", "--shard-size", "2"]) == 0
    assert "packed 5 samples into 3 shard(s)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["modality"] == "multiview" and manifest["members"]["view002.png"] == 5
    shards = build_dataset("multiview_shards", {"path": str(out)}, "train")
    folder = MultiviewFolder(str(src))
    assert len(shards) == len(folder) == 5
    by_caption = {}
    for i in range(5):
        item = shards[i]
        by_caption.setdefault(item["condition"], []).append(item["sample"])
    for i in range(5):
        ref = folder[i]
        assert any(torch.equal(ref["sample"], s) for s in by_caption[ref["condition"]])
    # the packed pixels are the renders' (8-bit PNG) and the cameras exact to 1e-6
    truth = data[0]["sample"]
    got = next(s for s in by_caption[data[0]["meta"]["caption"]] if (s - truth).abs().max() < 1.5 / 127.5)
    assert (got[:, 3:] - truth[:, 3:]).abs().max() < 1e-6


def _edit(path, fn):
    spec = json.loads(path.read_text())
    fn(spec)
    path.write_text(json.dumps(spec))


def test_scenes_that_cannot_be_read_are_skipped_at_packing_with_a_reason(scenes, tmp_path, caplog):
    src, _ = scenes
    base = src / "set.a"
    (base / "scene_0" / "001.png").unlink()
    _edit(base / "scene_1" / "cameras.json", lambda s: s["views"][1]["c2w"][0].__setitem__(0, 3.0))
    from PIL import Image

    Image.new("RGB", (8, 8)).save(base / "scene_2" / "002.png")
    (base / "scene_3" / "cameras.json").write_text("{not json")
    listing = list_scenes(src)
    reasons = dict(listing.skipped)
    assert len(listing.samples) == 1 and listing.samples[0].key == "set.a/scene_4"
    assert "'001.png' listed in cameras.json is missing" in reasons["set.a/scene_0"]
    assert "not a rigid camera-to-world transform" in reasons["set.a/scene_1"]
    assert "views of different sizes" in reasons["set.a/scene_2"]
    assert "unreadable cameras.json" in reasons["set.a/scene_3"]
    assert "skipped 4 of 5 scenes" in caplog.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no scene under"):
        list_scenes(tmp_path / "empty")


def test_a_shard_scene_damaged_after_packing_is_a_named_corrupt_sample(scenes, tmp_path):
    from lumina_core.data.pack import PackSample, pack_samples
    from lumina_core.data.robust import CorruptSampleError
    from lumina_modalities.multiview import MultiviewShards

    src, _ = scenes
    samples = list_scenes(src).samples
    bad = samples[0]
    bad.members["view001.png"] = b"not a png"
    pack_samples(samples, tmp_path / "s")
    ds = MultiviewShards(str(tmp_path / "s"))
    names = [ds.item_name(i) for i in range(len(ds))]
    damaged = next(i for i, n in enumerate(names) if n.endswith("scene_0"))
    with pytest.raises(
        CorruptSampleError, match="scene_0: view file 'view001.png' is not a readable picture"
    ):
        ds[damaged]
    wrapped = build_dataset("multiview_shards", {"path": str(tmp_path / "s")}, "train")
    items = [wrapped[i] for i in range(len(wrapped))]  # the damaged scene is skipped and counted
    assert all(it["sample"].shape == (3, 15, 16, 16) for it in items)
    pack_samples([PackSample("img", {"png": b"x", "txt": b"a"})], tmp_path / "images")  # no scene in it
    with pytest.raises(ValueError, match="no packed scene"):
        MultiviewShards(str(tmp_path / "images"))

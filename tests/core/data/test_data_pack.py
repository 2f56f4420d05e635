"""`lumina data pack --modality NAME`: each modality's folder dataset lists what is packed; a manifest with
counts, sizes and checksums; what was packed reads back through the modality's shard datasets."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from lumina_core.cli.main import main
from lumina_core.data import build_dataset
from lumina_core.data.pack import PackSample, pack_lister, pack_samples


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))


def _manifest(folder) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    for shard in manifest["shards"]:
        data = (folder / shard["file"]).read_bytes()
        assert len(data) == shard["bytes"] and hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert sum(s["samples"] for s in manifest["shards"]) == manifest["num_samples"]
    return manifest


def test_image_folder_packs_and_reads_back(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((6, 6, 3), 40 * i, dtype=np.uint8)).save(src / "sub" / f"x.{i}.png")
        (src / "sub" / f"x.{i}.txt").write_text(f"grey {i}")
    (src / "notes.wav").write_bytes(b"RIFF")  # not an image: the image layout leaves it out
    (src / "notes.txt").write_text("a stray clip")
    out = tmp_path / "shards"
    assert main(["data", "pack", str(src), str(out), "--modality", "image", "--shard-size", "2"]) == 0
    assert "packed 5 samples into 3 shard(s)" in capsys.readouterr().out
    manifest = _manifest(out)
    assert manifest["modality"] == "image" and manifest["members"] == {"path": 5, "png": 5, "txt": 5}
    ds = build_dataset("image_shards", {"path": str(out), "size": 6}, "val")
    assert sorted(ds[i]["condition"] for i in range(len(ds))) == [f"grey {i}" for i in range(5)]
    # a second pack into the same folder is refused (stale shards would be read), --overwrite replaces
    assert main(["data", "pack", str(src), str(out), "--modality", "image"]) == 2
    assert "already holds packed shards" in capsys.readouterr().err
    assert main(["data", "pack", str(src), str(out), "--modality", "image", "--overwrite"]) == 0
    assert [s["file"] for s in _manifest(out)["shards"]] == ["shard-000000.tar"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-000000.tar"]


def test_audio_and_pointcloud_folders_pack_as_their_datasets_read_them(tmp_path):
    import soundfile as sf
    import trimesh

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        sf.write(clips / f"c{i}.flac", np.sin(np.arange(4000) * 0.05 * (i + 1)).astype(np.float32), 8000)
    (clips / "c0.txt").write_text("a low tone")  # the others have no caption: audio packs them with ""
    assert main(["data", "pack", str(clips), str(tmp_path / "a"), "--modality", "audio"]) == 0
    manifest = _manifest(tmp_path / "a")
    assert manifest["num_samples"] == 3 and manifest["missing_captions"] == 2
    audio = build_dataset("audio_shards", {"path": str(tmp_path / "a"), "sample_rate": 8000}, "val")
    assert sorted(audio[i]["condition"] for i in range(3)) == ["", "", "a low tone"]

    meshes = tmp_path / "meshes"
    for cls, make in (("box", lambda k: trimesh.creation.box(extents=(1, 1 + k, 1))),
                      ("ball", lambda k: trimesh.creation.icosphere(radius=1 + k))):  # fmt: skip
        (meshes / cls).mkdir(parents=True)
        for k in range(2):
            make(k).export(meshes / cls / f"m{k}.obj")
    assert main(["data", "pack", str(meshes), str(tmp_path / "m"), "--modality", "pointcloud"]) == 0
    assert _manifest(tmp_path / "m")["members"]["obj"] == 4
    clouds = build_dataset("mesh_shards", {"urls": str(tmp_path / "m"), "num_points": 64}, "train")
    assert clouds.classes == ["ball", "box"] and sorted(it["condition"] for it in clouds) == [0, 0, 1, 1]


def test_modalities_without_a_folder_dataset_and_plugins_that_add_one(tmp_path, capsys):
    src = tmp_path / "x"
    src.mkdir()
    (src / "a.png").write_bytes(b"")
    assert main(["data", "pack", str(src), str(tmp_path / "o"), "--modality", "music"]) == 2
    assert "no folder dataset that lists samples" in capsys.readouterr().err
    with pytest.raises(LookupError, match="Did you mean: 'image'"):
        pack_lister("imag")
    # a plugin's list_samples may pack several files per sample (views of a scene, say)
    scene = [PackSample("scene_0", {"000.png": b"v0", "001.png": b"v1", "json": b'{"fov": 40}'})]
    report = pack_samples(scene, tmp_path / "views", modality="multiview")
    from lumina_core.data.shards import IndexedShards

    index = IndexedShards(report.shards)
    assert index.keys == ["scene_0"] and index.read(0)["001.png"] == b"v1"
    with pytest.raises(ValueError, match="two samples map to the shard key"):
        pack_samples(scene * 2, tmp_path / "twice")

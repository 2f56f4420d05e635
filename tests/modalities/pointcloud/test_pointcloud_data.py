"""Point-cloud data: procedural shapes, a user's mesh folder with bad meshes, shards, and previews."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from lumina_core.registry import DATASETS
from lumina_modalities.pointcloud import PointCloudPlugin
from lumina_modalities.pointcloud.datasets import MeshFolder, ShapesLite
from lumina_modalities.pointcloud.meshes import BadMeshError, check_mesh
from lumina_modalities.pointcloud.preview import read_ply_points, render_view
from lumina_modalities.pointcloud.shapes import CLASSES


def test_shapes_lite_items_are_seeded_balanced_and_captioned() -> None:
    ds = DATASETS.build(
        {"name": "shapes_lite", "params": {"num_items": 16, "num_points": 128, "cache": False}}
    )
    items = [ds[i] for i in range(16)]
    assert [it["meta"]["class"] for it in items[:8]] == list(CLASSES)
    assert [it["condition"] for it in items[8:]] == list(range(8))
    assert all(it["sample"].shape == (128, 3) and torch.isfinite(it["sample"]).all() for it in items)
    assert all(CLASSES[it["condition"]].split("_")[0] in it["meta"]["caption"] for it in items)
    torch.testing.assert_close(ds[3]["sample"], items[3]["sample"])  # same index, same cloud
    val = ShapesLite(num_items=16, num_points=128, split="val")
    assert not torch.allclose(val[3]["sample"], items[3]["sample"])
    text = ShapesLite(num_items=8, num_points=64, condition="text", classes=["torus", "box"])
    assert text[0]["condition"].endswith("torus") and text[1]["condition"].endswith("box")


def test_shapes_lite_geometry_matches_its_class() -> None:
    # a torus has a hole: no point near its centre axis; a sphere's points are all at one radius
    ds = ShapesLite(num_items=8, num_points=400, classes=["torus", "sphere"], rotation="none")
    torus, sphere = ds[0]["sample"], ds[1]["sample"]
    centred = torus - torus.mean(0)
    assert centred[:, :2].norm(dim=1).min() > 0.2 * centred[:, :2].norm(dim=1).max()
    r = (sphere - sphere.mean(0)).norm(dim=1)
    assert (r.max() - r.min()) / r.mean() < 0.05


def test_pytorch3d_sampler_and_normals() -> None:
    ds = ShapesLite(num_items=2, num_points=200, sampler="pytorch3d", normals=True, classes=["box"])
    x = ds[0]["sample"]
    assert x.shape == (200, 6)
    torch.testing.assert_close(x[:, 3:].norm(dim=1), torch.ones(200), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        ds[0]["sample"],
        ShapesLite(num_items=2, num_points=200, sampler="pytorch3d", normals=True, classes=["box"])[0][
            "sample"
        ],
    )


def _write_folder(root: Path) -> None:
    (root / "boxes").mkdir(parents=True)
    (root / "balls").mkdir()
    trimesh.creation.box(extents=(1, 2, 3)).export(root / "boxes" / "b1.obj")
    trimesh.creation.box(extents=(2, 2, 1)).export(root / "boxes" / "b2.stl")
    (root / "boxes" / "b2.txt").write_text("a flat box\n")
    trimesh.creation.icosphere(subdivisions=2).export(root / "balls" / "s1.ply")
    # bad meshes: vertices but no faces; a NaN coordinate; every vertex in one place
    (root / "balls" / "nofaces.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (root / "balls" / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    (root / "boxes" / "point.obj").write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")


def test_mesh_folder_rejects_bad_meshes_by_name_and_loads_the_rest(tmp_path: Path, caplog) -> None:
    _write_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = MeshFolder(str(tmp_path), num_points=64)
    rejected = dict(ds.rejected)
    assert set(Path(p).name for p in rejected) == {"nofaces.obj", "nan.obj", "point.obj"}
    reasons = " ".join(rejected.values())
    assert "no faces" in reasons and "NaN" in reasons and "degenerate scale" in reasons
    assert all(Path(p).name in msg for p, msg in rejected.items())  # each message names its file
    assert "nofaces.obj" in caplog.text
    assert len(ds) == 3 and ds.classes == ["balls", "boxes"]
    items = [ds[i] for i in range(3)]
    assert [it["condition"] for it in items] == [0, 1, 1]
    assert all(it["sample"].shape == (64, 3) for it in items)
    assert items[2]["meta"]["caption"] == "a flat box"
    assert MeshFolder(str(tmp_path), num_points=8, condition="text")[2]["condition"] == "a flat box"


def test_mesh_folder_bad_meshes_are_skipped_and_counted_when_read(tmp_path: Path) -> None:
    from lumina_core.data.robust import SkipCorrupt

    _write_folder(tmp_path)
    ds = SkipCorrupt(MeshFolder(str(tmp_path), num_points=32, check=False), substitute=False)
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 6 and sum(it is None for it in items) == 3
    assert ds.skipped == 3 and {Path(n).name for n in ds.skipped_names} == {
        "nofaces.obj",
        "nan.obj",
        "point.obj",
    }


def test_check_mesh_messages() -> None:
    good = trimesh.creation.box()
    check_mesh(good, "good.obj")
    flat = trimesh.Trimesh(
        vertices=np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]]), faces=[[0, 1, 2]], process=False
    )
    with pytest.raises(BadMeshError, match="line.obj: degenerate scale"):
        check_mesh(flat, "line.obj")


def test_mesh_shards_round_trip_and_skip(tmp_path: Path) -> None:
    from lumina_core.data.shards import pack_folder

    _write_folder(tmp_path / "src")
    pack_folder(
        tmp_path / "src", str(tmp_path / "shards" / "s-%06d.tar"), shard_size=4, missing_caption="empty"
    )
    ds = DATASETS.build(
        {"name": "mesh_shards", "params": {"urls": str(tmp_path / "shards" / "*.tar"), "num_points": 32}}
    )
    items = list(ds)
    assert ds.classes == ["balls", "boxes"]
    assert sorted(it["meta"]["class"] for it in items) == ["balls", "boxes", "boxes"]
    assert ds.skipped == 3 and "skipped 3 of 6" in ds.summary()
    again = {it["meta"]["name"]: it["sample"] for it in ds}
    for it in items:  # seeded by key: the same cloud every pass
        torch.testing.assert_close(again[it["meta"]["name"]], it["sample"])
    # map-style access (evaluate() reads val[i]): every packed sample by index, bad ones raise
    from lumina_core.data.robust import SkipCorrupt

    assert len(ds) == 6
    by_index, bad = {}, []
    for i in range(len(ds)):
        try:
            it = ds[i]
        except BadMeshError as err:
            assert ds.item_name(i) in str(err)
            bad.append(i)
            continue
        by_index[it["meta"]["name"]] = it
    assert len(bad) == 3 and by_index.keys() == again.keys()
    for name, it in by_index.items():  # the same item as streamed
        torch.testing.assert_close(it["sample"], again[name])
    wrapped = SkipCorrupt(ds, substitute=False)  # None for a bad item
    assert sum(wrapped[i] is None for i in range(len(wrapped))) == 3 and wrapped.skipped == 3


def test_previews_write_ply_and_png(tmp_path: Path) -> None:
    from PIL import Image

    clouds = [ShapesLite(num_items=2, num_points=100, classes=["cone"])[0]["sample"], torch.randn(50, 3)]
    paths = PointCloudPlugin().write_preview(clouds, ["a cone", "noise"], tmp_path, "demo")
    assert [p.suffix for p in paths] == [".ply", ".ply", ".png"]
    np.testing.assert_allclose(read_ply_points(paths[0]), clouds[0].numpy(), rtol=1e-5, atol=1e-5)
    assert trimesh.load(paths[1]).vertices.shape == (50, 3)  # a real PLY reader agrees
    img = Image.open(paths[2])
    assert img.size[0] > 3 * 128 and img.size[1] > 2 * 128


def test_render_view_projects_orthographically() -> None:
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])  # top and bottom of the z axis
    front = render_view(pts, "front", size=33, radius=0)
    assert (front < 255).sum() == 2 and front[0, 16] < 255 and front[32, 16] < 255
    top = render_view(pts, "top", size=33, radius=0)
    assert (top < 255).sum() == 1 and top[16, 16] < 255  # both on one pixel: the nearer one is drawn

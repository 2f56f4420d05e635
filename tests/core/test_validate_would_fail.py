"""`config validate` refuses recipes whose run would then fail (issue 27): an image folder whose every file
is unreadable, `eval.num_samples: 0`."""

from __future__ import annotations

import pytest
from fixtures.toy_plugin import seq_task, tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli.main import main
from lumina_core.config.validate import validate_recipe


def _folder_recipe(tmp_path, folder):
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=False)
    cfg["model"]["dim"] = 64  # RGB 4x4 patches are 48 values wide
    cfg["tasks"] = [
        {**seq_task(), "name": "pictures", "modality": {"name": "image", "params": {"patch_size": 4, "fid": False}},
         "data": {"name": "image_folder", "params": {"root": str(folder), "size": 8}, "batch_size": 2},
         "conditioning": {"encoder": {"name": "none"}}},
    ]  # fmt: skip
    return cfg


def _images(folder, good: int, bad: int):
    from PIL import Image

    folder.mkdir()
    for i in range(bad):
        (folder / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image at all")
        (folder / f"bad{i}.txt").write_text("a broken file")
    for i in range(good):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"good{i}.png")
        (folder / f"good{i}.txt").write_text("a red square")


def test_a_folder_whose_every_file_is_unreadable_is_refused(tmp_path):
    pytest.importorskip("lumina_modalities.image")
    _images(tmp_path / "pics", good=0, bad=3)
    problems = validate_recipe(_folder_recipe(tmp_path, tmp_path / "pics"))
    assert any(
        p.startswith("tasks.0.data: dataset 'image_folder' (train split): none of its 3 items can be read")
        for p in problems
    ), problems


def test_a_folder_with_one_readable_file_is_fine(tmp_path):
    pytest.importorskip("lumina_modalities.image")
    _images(tmp_path / "pics", good=1, bad=3)
    assert validate_recipe(_folder_recipe(tmp_path, tmp_path / "pics")) == []


def test_eval_num_samples_zero_is_refused(tmp_path):
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=False)
    cfg["tasks"][0]["eval"]["num_samples"] = 0
    assert any(p.startswith("tasks.0.eval.num_samples: must be at least 1") for p in validate_recipe(cfg))


def test_validate_on_the_command_line_says_what_the_run_would_meet(tmp_path, capsys):
    pytest.importorskip("lumina_modalities.image")
    _images(tmp_path / "pics", good=0, bad=2)
    recipe = tmp_path / "r.yaml"
    cfg = _folder_recipe(tmp_path, tmp_path / "pics")
    cfg["tasks"][0]["eval"] = {"num_samples": 0}
    OmegaConf.save(OmegaConf.create(cfg), recipe)
    code = main(["config", "validate", str(recipe)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "none of its 2 items can be read" in err and "tasks.0.eval.num_samples" in err


@pytest.mark.parametrize(
    "where,value,says",
    [
        (("train", "threads"), -2, "train.threads: must be at least 1"),
        (("train", "preview_every"), -1, "train.preview_every: must be at least 0"),
        (("tasks", 0, "eval", "sweep"), {"size": []}, "tasks.0.eval.sweep.size: must be a non-empty list"),
    ],
)
def test_other_values_the_run_would_refuse(tmp_path, where, value, says):
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=False)
    node = cfg
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert any(p.startswith(says) for p in validate_recipe(cfg)), validate_recipe(cfg)

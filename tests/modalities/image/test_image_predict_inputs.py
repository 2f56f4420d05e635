"""`lumina predict` on a user's folder (issue 27): captions and notes beside the images are ignored and
counted, not listed as unreadable; a missing run or checkpoint is named as what it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from lumina_core.cli.main import main
from lumina_core.config.schema import RecipeConfig
from lumina_core.recognition.predict import list_inputs


def _recipe(out_dir, max_steps=2):
    task = {
        "name": "digits",
        "modality": {"name": "image", "params": {"patch_size": 4, "channels": 1, "image_size": 16, "fid": False}},
        "data": {"name": "digits_labelled", "params": {"size": 16}, "batch_size": 8},
        "objective": {"name": "classification", "params": {"classes": 10}},
        "conditioning": {"encoder": {"name": "none"}, "drop_prob": 0.0},
    }
    return OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "pred", "output_dir": str(out_dir), "device": "cpu", "seed": 0},
            "model": {"dim": 32, "n_layers": 1, "n_heads": 2, "multiple_of": 32},
            "tasks": [task],
            "train": {"max_steps": max_steps, "ckpt_every": max_steps, "log_every": max_steps, "threads": 1},
        },
    )


def _folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(np.full((16, 16), 200, np.uint8)).save(folder / name)
    (folder / "a.txt").write_text("a seven")
    (folder / "sub" / "b.txt").write_text("a one")
    (folder / "notes.md").write_text("my digits")
    return folder


def test_list_inputs_keeps_the_modality_files_of_folders(tmp_path):
    folder = _folder(tmp_path)
    files, ignored = list_inputs([folder], ("png", "jpg"))
    assert [f.name for f in files] == ["a.png", "b.png"]
    assert sorted(f.name for f in ignored) == ["a.txt", "b.txt", "notes.md"]
    files, ignored = list_inputs([folder / "a.txt"], ("png",))  # named on its own: tried
    assert files == [folder / "a.txt"] and ignored == []
    with pytest.raises(ValueError, match=r"none with the extensions this modality reads \(jpg\)"):
        list_inputs([folder], ("jpg",))


def test_predict_ignores_captions_and_counts_them(tmp_path, capsys):
    from lumina_core.training.api import train

    cfg = _recipe(tmp_path / "run")
    train(cfg)
    recipe = tmp_path / "r.yaml"
    OmegaConf.save(cfg, recipe)
    out = tmp_path / "pred.json"
    capsys.readouterr()
    code = main(["predict", str(recipe), "--input", str(_folder(tmp_path)), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "skipped" not in printed.replace("0 skipped", "")
    assert "ignored 3 file(s)" in printed and "2 .txt" in printed and "1 .md" in printed
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 2 and result["skipped"] == [] and len(result["ignored"]) == 3


def test_predict_without_a_run_names_the_missing_run_folder(tmp_path, capsys):
    cfg = _recipe(tmp_path / "never_trained")
    recipe = tmp_path / "r.yaml"
    OmegaConf.save(cfg, recipe)
    folder = _folder(tmp_path)
    assert main(["predict", str(recipe), "--input", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "there is no run folder at" in err and "never_trained" in err and "lumina train" in err
    (tmp_path / "never_trained").mkdir()
    assert main(["predict", str(recipe), "--input", str(folder)]) == 2
    assert "holds no checkpoint yet" in capsys.readouterr().err

"""Recognition through the whole framework: train a classification recipe on real digits, evaluate accuracy
per resolution, classify a folder of image files (one of them corrupt), and a generation + classification
multi-task run on one trunk; the command line's bad-input paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from lumina_core.config.schema import RecipeConfig
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import evaluate, train

MODEL = {"dim": 32, "n_layers": 2, "n_heads": 2, "multiple_of": 32}
TRAIN = {"max_steps": 100, "lr": 5e-3, "warmup_steps": 10, "lr_schedule": "cosine", "ema_decay": 0.9,
         "ckpt_every": 100, "log_every": 100, "threads": 1}  # fmt: skip


def classify_task(name: str = "digits", **objective) -> dict:
    return {
        "name": name,
        "modality": {
            "name": "image",
            "params": {"patch_size": 4, "channels": 1, "image_size": 16, "fid": False},
        },
        "data": {"name": "digits_labelled", "params": {"size": 16}, "batch_size": 32},
        "objective": {"name": "classification", "params": {"classes": 10, **objective}},
        "conditioning": {"encoder": {"name": "none"}, "drop_prob": 0.0},
        "eval": {"num_samples": 120, "batch_size": 60, "sweep": {"size": [12, 16, 24]}},
    }


def recipe(out_dir, tasks: list[dict], **train_cfg):
    return OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "rec", "output_dir": str(out_dir), "device": "cpu", "seed": 0},
            "model": MODEL,
            "tasks": tasks,
            "train": {**TRAIN, **train_cfg},
        },
    )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    cfg = recipe(tmp_path_factory.mktemp("rec") / "run", [classify_task()])
    run_dir = train(cfg)
    return cfg, run_dir


def test_training_saves_the_head_and_evaluates_per_resolution(digits_run):
    cfg, run_dir = digits_run
    weights = ckpt_io.load_weights(ckpt_io.resolve_weights("last", run_dir), "model")
    assert any(k.startswith("model.heads.digits.") for k in weights)
    assert not (run_dir / "previews").exists() or not any(
        (run_dir / "previews").iterdir()
    )  # nothing generated
    metrics = evaluate(cfg)
    for size in (12, 16, 24):
        assert f"digits/accuracy@size={size}" in metrics
        assert f"digits/top5_accuracy@size={size}" in metrics
    assert metrics["digits/accuracy@size=16"] >= 0.4  # chance is 0.1; 100 steps of a tiny trunk
    record = json.loads((run_dir / "metrics.json").read_text())
    conf = np.asarray(record["details"]["digits@size=16"]["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == 120
    assert np.trace(conf) / 120 == pytest.approx(metrics["digits/accuracy@size=16"])


def test_predict_prints_top_k_and_skips_corrupt_files(digits_run, tmp_path, capsys):
    from lumina_core.cli.main import main
    from lumina_modalities.image.digits_labels import LabelledDigitsDataset

    cfg, run_dir = digits_run
    ds = LabelledDigitsDataset(size=16, split="val")
    images = tmp_path / "images"
    images.mkdir()
    labels = []
    for i in range(6):
        it = ds[i]
        arr = ((it["sample"][0].numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(images / f"img{i}.png")
        labels.append(it["meta"]["label"])
    (images / "broken.png").write_bytes(b"\x89PNG truncated")
    recipe_path = tmp_path / "recipe.yaml"
    OmegaConf.save(cfg, recipe_path)
    out = tmp_path / "pred.json"
    assert (
        main(["predict", str(recipe_path), "--input", str(images), "--top-k", "2", "--json", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "skipped" in printed and "broken.png" in printed
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 6 and len(result["skipped"]) == 1
    assert all(len(p["top"]) == 2 and p["top"][0][1] >= p["top"][1][1] for p in result["predictions"])
    hits = sum(p["top"][0][0] == lab for p, lab in zip(result["predictions"], labels, strict=True))
    assert hits >= 3  # better than chance on real digits
    assert main(["predict", str(recipe_path), "--input", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generation_and_classification_share_one_trunk(tmp_path):
    gen = {
        "name": "generate",
        "modality": {
            "name": "image",
            "params": {"patch_size": 2, "channels": 1, "image_size": 8, "fid": False},
        },
        "data": {
            "name": "digits",
            "params": {"size": 8, "condition": "class", "channels": 1},
            "batch_size": 16,
        },
        "conditioning": {"encoder": {"name": "class", "params": {"num_classes": 10, "dim": 32}}},
        "sampling": {"steps": 2, "solver": {"name": "euler"}},
        "eval": {"num_samples": 8, "batch_size": 8},
    }
    cls = classify_task("classify", pool="cls")
    cls["eval"] = {"num_samples": 40, "batch_size": 40}
    cfg = recipe(tmp_path / "run", [gen, cls], max_steps=6, ckpt_every=6)
    run_dir = train(cfg)
    weights = ckpt_io.load_weights(ckpt_io.resolve_weights("last", run_dir), "model")
    assert any(k.startswith("model.heads.classify.cls_token") for k in weights)
    assert not any(k.startswith("model.heads.generate") for k in weights)
    assert any(k.startswith("model.adapters.generate.") for k in weights)
    metrics = evaluate(cfg)
    assert "generate/digit_acc" in metrics and "classify/accuracy" in metrics
    assert list((run_dir / "previews").glob("generate_*")) and not list(
        (run_dir / "previews").glob("classify_*")
    )


def test_a_label_outside_the_classes_stops_training_with_a_clear_error(tmp_path):
    task = classify_task(classes=5)  # digits 5..9 are outside
    task["objective"]["params"]["classes"] = 5
    cfg = recipe(tmp_path / "run", [task], max_steps=2)
    with pytest.raises(ValueError, match="outside the declared classes: expected a class id 0..4"):
        train(cfg)

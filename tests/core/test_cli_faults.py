"""The command line on bad input and faults: one paragraph, exit 2 (143 for SIGTERM, tested with the run
safety tests), never a traceback; files streamed and listed as they are written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli import commands
from lumina_core.cli.main import main
from lumina_core.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
TEXT_RECIPE = str(ROOT / "recipes" / "image" / "shapes_tiny.yaml")


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_class_labels_for_a_text_recipe_say_use_prompt(capsys):
    code, _, err = _run(["sample", TEXT_RECIPE, "--ckpt", "last", "--class", "3"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "text-conditioned" in err and "use --prompt" in err


def test_blank_prompts_are_refused_with_their_line(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle on the left\n\na blue square\n   \nlast\n\n")
    code, _, err = _run(["sample", TEXT_RECIPE, "--ckpt", "last", "--prompt-file", str(prompts)], capsys)
    assert code == 2 and "line(s) 2, 4 are blank" in err and "--unconditional" in err
    code, _, err = _run(["sample", TEXT_RECIPE, "--ckpt", "last", "--prompt", "a red circle", ""], capsys)
    assert code == 2 and "number 2 are empty" in err


@pytest.fixture
def toy_run(tmp_path):
    """A trained toy run (2 steps) and its recipe file."""
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality)

    from lumina_core.training.api import train

    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", max_steps=2), recipe)
    train(tiny_recipe(tmp_path / "run", max_steps=2))
    return recipe


def test_many_samples_warn_and_files_stream_with_a_manifest(toy_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(commands, "MANY_SAMPLES", 3)
    out = tmp_path / "samples"
    code, stdout, err = _run(
        ["sample", str(toy_run), "--ckpt", "last", "--class", "1", "2", "--num", "2", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    assert "warning: 4 samples requested" in err
    wrote = [line for line in stdout.splitlines() if line.strip().startswith("wrote ")]
    assert len(wrote) == len(list(out.glob("*.csv"))) == 4
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert sorted(e["condition"] for e in manifest) == [1, 1, 2, 2]
    entry = manifest[0]
    assert {"task", "condition", "seed", "solver", "steps", "grid", "cfg_scale", "checkpoint"} <= set(entry)
    assert "class-1" in entry["file"] and entry["checkpoint"].endswith("step_0000002")


def test_a_second_train_in_the_same_folder_is_one_paragraph(toy_run, capsys):
    code, _, err = _run(["train", str(toy_run)], capsys)
    assert code == 2 and "--resume last" in err and "--overwrite" in err and "Traceback" not in err


def test_non_finite_loss_is_one_paragraph_and_exit_2(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401

    recipe = tmp_path / "nan.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", max_steps=5, lr=1e30), recipe)
    code, _, err = _run(["train", str(recipe)], capsys)
    ours = err[err.index("lumina train: error:") :]  # (pytest's capture may add logging noise before it)
    assert code == 2 and "non-finite" in ours and "Traceback" not in ours
    assert len(ours.strip().splitlines()) == 2  # the paragraph and the --debug hint


def test_eval_writes_each_scored_sample_with_the_checkers_verdict(toy_run, tmp_path, capsys):
    code, stdout, err = _run(["eval", str(toy_run)], capsys)
    assert code == 0, err
    scored = tmp_path / "run" / "eval" / "seq"
    files = json.loads((scored / "manifest.json").read_text())["files"]
    assert len(files) == 4 and all((scored / f["file"]).is_file() for f in files)
    assert all(f["verdict"]["class_acc"] in (0.0, 1.0) for f in files), files[0]
    assert all("meta" in f and "condition" in f for f in files)


def test_progress_prints_plain_lines_off_a_terminal_and_a_bar_on_one():
    plain = io.StringIO()
    with Progress(10, "sampling", "samples", every_s=0.0, stream=plain) as p:
        p.update(4)
    text = plain.getvalue()
    assert "sampling: 4/10 samples" in text and "left" in text and "\r" not in text
    assert text.count("sampling: 4/10") == 1  # the closing line does not repeat the last one

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    with Progress(10, "training", "steps", stream=tty) as p:
        p.update(10)
    assert "training" in tty.getvalue() and "10/10" in tty.getvalue() and "\r" in tty.getvalue()


def test_docs_hold_the_generated_recipe_key_reference(capsys):
    from lumina_core.config.reference import BEGIN, END, markdown

    text = (ROOT / "docs" / "recipes.md").read_text()
    doc = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert doc == markdown(), "docs/recipes.md is out of date: paste the output of `lumina config keys`"
    code, out, _ = _run(["config", "keys"], capsys)
    assert code == 0 and out.strip() == markdown()
    for key in ("train.threads", "train.preview_every", "train.skip_nonfinite", "train.weight_decay",
                "train.betas", "train.compile", "model.multiple_of"):  # fmt: skip
        assert f"| `{key}` |" in doc
    assert "|  |" not in doc  # every key says what it does


def test_config_validate_runs_the_build_pass(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401

    recipe = tmp_path / "bad.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", max_steps=2), recipe)
    code, _, err = _run(["config", "validate", str(recipe), "run.device=gpu", "train.precision=fp16"], capsys)
    assert code == 2 and "run.device" in err and "train.precision" in err and "2 problems" in err

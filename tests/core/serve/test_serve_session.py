"""The page's model without a browser: a request becomes files plus their kinds; every error is a message."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumina_core.plugin import PREVIEW_KINDS, PreviewItem
from lumina_core.serve import ServeSession, parse_shape
from lumina_core.serve.app import page_outputs


@pytest.fixture(scope="module")
def session(tiny_run, tmp_path_factory):
    cfg, _ = tiny_run
    return ServeSession(cfg, "last", out_dir=tmp_path_factory.mktemp("served"))


def test_text_task_gives_images_of_the_asked_shape(session):
    assert session.loaded and session.load_error is None
    assert session.tasks["shapes"].condition == "text" and session.tasks["clouds"].num_classes == 8
    r = session.generate("shapes", "a red circle on the left", num=2)
    assert r.ok, r.message
    assert "2 sample(s) of shape (3, 16, 16)" in r.message and "euler, 3 steps" in r.message
    assert {it.kind for it in r.items} == {"image"} and all(it.path.is_file() for it in r.items)
    r = session.generate("shapes", "a blue square", shape="3, 24, 32", steps=2, solver="midpoint")
    assert r.ok, r.message
    assert "shape (3, 24, 32)" in r.message and "midpoint, 2 steps (4 NFE)" in r.message
    sizes = {Image.open(it.path).size for it in r.items}
    assert (32, 24) in sizes  # the sample itself, (W, H); the captioned grid is larger


def test_class_task_gives_point_clouds_to_turn_around(session):
    r = session.generate("clouds", "3", num=2, seed=5)
    assert r.ok, r.message
    clouds = r.of_kind("model3d")
    assert len(clouds) == 2 and all(it.path.suffix == ".ply" for it in clouds)
    lines = clouds[0].path.read_text().splitlines()
    assert "element vertex 64" in lines and len(lines) == lines.index("end_header") + 1 + 64
    assert r.of_kind("image")  # the plugin's orthographic views


def test_same_seed_same_result_other_seed_other_result(session):
    a = session.generate("shapes", "a green triangle", seed=3).of_kind("image")[-1].path
    b = session.generate("shapes", "a green triangle", seed=3).of_kind("image")[-1].path
    c = session.generate("shapes", "a green triangle", seed=4).of_kind("image")[-1].path
    pa, pb, pc = (np.asarray(Image.open(p)) for p in (a, b, c))
    assert a != b and np.array_equal(pa, pb) and not np.array_equal(pa, pc)


@pytest.mark.parametrize(
    ("task", "prompt", "kw", "expected"),
    [
        ("shapes", "7", {}, "text-conditioned: type a caption, not a class id"),
        ("shapes", "", {}, "text-conditioned: type a caption"),
        ("clouds", "a red circle", {}, "class-conditioned: type a class id (0..7), not a caption"),
        ("clouds", "8", {}, "class 8 is out of range for task 'clouds': expected 0..7"),
        ("shapes", "a cat", {"shape": "3 by 16"}, "positive integers separated by commas"),
        ("shapes", "a cat", {"shape": "3, 15, 16"}, "multiples of 2"),
        ("shapes", "a cat", {"solver": "eulr"}, "unknown solver 'eulr'"),
        ("shapes", "a cat", {"num": 0}, "number of samples must be a whole number from 1 to 4"),
        ("shapes", "a cat", {"steps": 0}, "steps must be a whole number from 1 to 100"),
        # values a client can send past the page's sliders: each one line, no traceback (issue 27)
        ("shapes", "a cat", {"steps": 1000}, "from 1 to 100 (the page's limit, --max-steps); got 1000"),
        ("shapes", "a cat", {"steps": 2.5}, "steps must be a whole number"),
        ("shapes", "a cat", {"num": 99}, "number of samples must be a whole number from 1 to 4"),
        ("shapes", "a cat", {"seed": "abc"}, "the seed must be a whole number"),
        ("shapes", "a cat", {"cfg_scale": "nan"}, "the guidance scale must be a number"),
        ("shapes", "x" * 1001, {}, "the page takes up to 1000"),
        ("shapes", "a cat", {"shape": "3, " + "9" * 4000 + ", 2"}, "the shape is 4006 characters"),
        ("video", "a cat", {}, "unknown task 'video'; this recipe's tasks: shapes, clouds"),
    ],
)
def test_bad_requests_are_messages_and_the_session_keeps_serving(session, task, prompt, kw, expected):
    r = session.generate(task, prompt, **kw)
    assert not r.ok and not r.items
    assert expected in r.message, r.message
    assert session.generate("clouds", "1").ok  # still serving


def test_a_failing_generation_is_a_message_not_an_exception(session, monkeypatch):
    plugin = session._parts.tasks["shapes"].plugin

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plugin, "write_preview", broken)
    r = session.generate("shapes", "a red circle")
    assert not r.ok and r.message == "generation failed: RuntimeError: disk full"
    monkeypatch.undo()
    assert session.generate("shapes", "a red circle").ok


def test_no_checkpoint_is_a_message_then_loads_when_one_appears(tiny_run, tmp_path):
    cfg, run_dir = tiny_run
    empty = cfg.copy()
    empty.run.output_dir = str(tmp_path / "later")
    s = ServeSession(empty, "last", out_dir=tmp_path / "out")
    assert not s.loaded and "no trained model to sample from yet" in s.load_error
    r = s.generate("shapes", "a red circle")
    assert not r.ok and "no trained model to sample from yet" in r.message and "lumina train" in r.message
    shutil.copytree(run_dir / "checkpoints", tmp_path / "later" / "checkpoints")
    r = s.generate("shapes", "a red circle")
    assert r.ok and s.loaded, r.message


def test_page_outputs_fill_the_slots():
    items = [PreviewItem("image", Path("/x/a.png"), "a")]
    items += [PreviewItem("audio", Path(f"/x/{i}.wav"), str(i)) for i in range(2)]
    from lumina_core.serve import PageResult

    out = page_outputs(PageResult(True, "done", items))
    assert out["status"] == "done" and out["gallery"] == [("/x/a.png", "a")]
    assert out["audio"] == ["/x/0.wav", "/x/1.wav", None, None] and out["model3d"] == [None] * 4
    bad = page_outputs(PageResult(False, "class 9 is out of range"))
    assert bad["status"] == "**Error:** class 9 is out of range" and bad["gallery"] == []


def test_preview_items_default_maps_every_preview_format(tmp_path):
    from lumina_core.registry import MODALITIES

    plugin = MODALITIES.get("image")(image_size=8, patch_size=4, channels=3)
    names = ["a.png", "b.GIF", "c.wav", "d.ply", "e.glb", "f.mp4", "g.csv", "h.npy"]
    items = plugin.preview_items([tmp_path / n for n in names])
    assert [(it.kind, it.path.name) for it in items] == [
        ("image", "a.png"), ("image", "b.GIF"), ("audio", "c.wav"), ("model3d", "d.ply"),
        ("model3d", "e.glb"), ("video", "f.mp4"),
    ]  # fmt: skip
    # every built-in and installed plugin's declared preview formats can be shown on the page
    for name in MODALITIES.names():
        if name.startswith("_"):
            continue
        formats = MODALITIES.get(name).preview_formats
        assert any(f".{f.lower()}" in PREVIEW_KINDS for f in formats), (name, formats)


def test_parse_shape():
    assert parse_shape("3, 32, 32") == (3, 32, 32) == parse_shape("(3 32 32)") == parse_shape("3x32x32")
    assert parse_shape("  ") is None
    with pytest.raises(ValueError, match="got '3, -1'"):
        parse_shape("3, -1")
    with pytest.raises(ValueError, match=r"each at most 1000000"):  # never a 10**80-token estimate
        parse_shape("3, " + "9" * 80 + ", 2")
    with pytest.raises(ValueError, match="the shape is 5000 characters"):
        parse_shape("3" * 5000)


def test_cli_refuses_a_bad_port_before_loading_anything(tmp_path, capsys):
    from fixtures.serve_run import tiny_recipe
    from omegaconf import OmegaConf

    from lumina_core.cli.main import EXIT_USER_ERROR, main

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("# Run: lumina train tiny.yaml\n" + OmegaConf.to_yaml(tiny_recipe(tmp_path / "run")))
    assert main(["serve", str(recipe), "--port", "70000"]) == EXIT_USER_ERROR
    assert "--port must be between 1 and 65535, got 70000" in capsys.readouterr().err


def test_examples_are_held_out_conditions_the_prompt_box_accepts(session):
    captions, classes = session.examples("shapes"), session.examples("clouds")
    assert captions and all(not c.isdigit() for c in captions) and len(set(captions)) == len(captions)
    assert classes and all(c.isdigit() and 0 <= int(c) < 8 for c in classes)
    assert session.generate("shapes", captions[0]).ok and session.generate("clouds", classes[-1]).ok


def test_closing_removes_an_unused_temporary_folder_and_keeps_a_used_or_given_one(tiny_run, tmp_path, monkeypatch):
    """`lumina serve` stopped before any request left an empty lumina-serve-* folder in /tmp."""
    cfg, _ = tiny_run
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    unused = ServeSession(cfg, "last")
    assert unused.out_dir.parent == tmp_path and unused.out_dir.name.startswith("lumina-serve-")
    unused.close()
    assert not unused.out_dir.exists()
    used = ServeSession(cfg, "last")
    assert used.generate("shapes", "a red circle").ok
    used.close()
    assert any(used.out_dir.iterdir())  # the page's files stay for the user
    given = ServeSession(cfg, "last", out_dir=tmp_path / "mine")
    given.close()
    assert (tmp_path / "mine").is_dir()

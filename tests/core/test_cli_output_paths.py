"""Output paths are checked before the work (issue 27: `lumina eval --json` under a file failed only after
the whole evaluation, and wrote nothing): one paragraph, exit 2, and the work is never started."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumina_core.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TEXT_RECIPE = str(ROOT / "recipes" / "image" / "shapes_tiny.yaml")


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("in the way")
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as its work."""
    import lumina_core.recognition.predict as rec
    import lumina_core.training.api as api

    def started(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    for module, name in ((api, "evaluate"), (api, "sample"), (rec, "predict")):
        monkeypatch.setattr(module, name, started)


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", TEXT_RECIPE, "--json", "{f}/sub/metrics.json"],
        ["eval", TEXT_RECIPE, "--json", "{f}/metrics.json"],
        ["predict", TEXT_RECIPE, "--input", ".", "--json", "{f}/pred.json"],
        ["sample", TEXT_RECIPE, "--ckpt", "last", "--prompt", "a red circle", "--out", "{f}/samples"],
        ["sample", TEXT_RECIPE, "--ckpt", "last", "--prompt", "a red circle", "--out", "{f}"],
    ],
)
def test_an_output_path_under_a_file_is_refused_before_the_work(argv, a_file, no_work, capsys):
    code = main([a.replace("{f}", str(a_file)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert str(a_file) in err and "is a file" in err and ("--json" in err or "--out" in err)


def test_data_pack_and_lora_outputs_under_a_file(a_file, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.png").write_bytes(b"x")
    (src / "x.txt").write_text("a caption")
    assert main(["data", "pack", str(src), str(a_file / "shards")]) == 2
    assert main(["data", "pack", str(src), str(a_file / "train-%06d.tar")]) == 2
    assert main(["lora", "merge", str(tmp_path), "adapter.safetensors", "--out", str(a_file / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("is a file, not a folder") == 3 and "Traceback" not in err


def test_the_checks_themselves(a_file, tmp_path):
    from lumina_core.cli.outputs import check_output_file, check_output_folder

    check_output_file(tmp_path / "new" / "deeper" / "m.json", "--json")  # missing folders are fine
    check_output_folder(tmp_path / "new" / "out", "--out")
    check_output_file(None, "--json")
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(ValueError, match=r"--out .*a_file is a file, not a folder"):
        check_output_folder(a_file, "--out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse
            pytest.skip("running as a user who can write into read-only folders")
        with pytest.raises(ValueError, match="not writable"):
            check_output_file(locked / "m.json", "--json")
    finally:
        locked.chmod(0o700)

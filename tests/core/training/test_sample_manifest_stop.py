"""``lumina sample`` stopped part-way keeps every file it wrote mapped to its condition: SIGTERM stops after the
batch being written with a complete ``manifest.json`` (exit 143), and even ``kill -9`` leaves a manifest that
lists all but the last few files, because the manifest is rewritten as files land."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core.training.api import train
from lumina_core.training.manifest import MANIFEST, SAVE_GROWTH, Manifest

TESTS = Path(__file__).resolve().parents[2]

CHILD = """
import sys
sys.path.insert(0, {tests!r})
import fixtures.toy_plugin  # registers the toy modality
from lumina_core.cli.main import main
raise SystemExit(main(["sample", {recipe!r}, "--ckpt", "last", "--class", "0", "1", "--num", "5000",
                       "--out", {out!r}]))
"""


@pytest.fixture(scope="module")
def trained_recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample-stop")
    recipe = root / "toy.yaml"
    OmegaConf.save(tiny_recipe(root / "run", max_steps=1), recipe)
    train(OmegaConf.load(recipe))
    return recipe


def _start(recipe: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS), recipe=str(recipe), out=str(out))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)},
    )  # fmt: skip


def _wait_for_files(child: subprocess.Popen, n: int) -> None:
    seen = 0
    for line in child.stdout:
        seen += line.startswith("  wrote ")
        if seen >= n:
            return
    pytest.fail(f"the sampling child ended before writing {n} files: {child.stderr.read()[-2000:]}")


def _listed_and_written(out: Path) -> tuple[list[str], set[str]]:
    listed = [e["file"] for e in json.loads((out / MANIFEST).read_text())["files"]]
    written = {p.name for p in out.iterdir() if p.suffix == ".csv"}
    return listed, written


def test_sigterm_stops_after_the_batch_with_every_file_in_the_manifest(trained_recipe, tmp_path):
    out = tmp_path / "samples"
    child = _start(trained_recipe, out)
    _wait_for_files(child, 30)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM after" in stderr and "Traceback" not in stderr
    listed, written = _listed_and_written(out)
    assert 30 <= len(written) < 10000  # stopped part-way
    assert sorted(listed) == sorted(written)  # each file once, none missing, none invented
    entries = json.loads((out / MANIFEST).read_text())["files"]
    assert {e["condition"] for e in entries} <= {0, 1} and all("seed" in e for e in entries)


def test_a_killed_run_leaves_a_manifest_of_nearly_every_file(trained_recipe, tmp_path):
    out = tmp_path / "samples"
    child = _start(trained_recipe, out)
    _wait_for_files(child, 300)
    child.kill()  # SIGKILL: nothing runs after it
    child.communicate(timeout=60)
    listed, written = _listed_and_written(out)
    assert set(listed) <= written and len(set(listed)) == len(listed)
    # all but what arrived since the last rewrite: at most SAVE_GROWTH of the rest, plus the batch being saved
    assert len(written) - len(listed) <= SAVE_GROWTH * len(listed) + 4, (len(written), len(listed))  # batches of 4


def test_rewrites_are_few_and_the_final_save_lists_everything(tmp_path):
    manifest = Manifest(tmp_path, {"task": "t"})
    saves = 0
    for i in range(2000):
        manifest.add([tmp_path / f"f{i:05d}.csv"], condition=i % 3)
        saves += manifest.save_if_due() is not None
        if i % 97 == 0:
            on_disk = json.loads((tmp_path / MANIFEST).read_text())["files"]
            assert len(on_disk) >= (i + 1) / (1 + SAVE_GROWTH) - 1  # never far behind
    assert saves < 150  # growth by SAVE_GROWTH per rewrite: about 115 rewrites for 2000 one-file batches
    manifest.save()
    assert [e["file"] for e in json.loads((tmp_path / MANIFEST).read_text())["files"]] == [
        f"f{i:05d}.csv" for i in range(2000)
    ]


def test_a_manifest_keeps_the_entries_of_an_earlier_run_in_the_same_folder(tmp_path):
    first = Manifest(tmp_path, {"task": "t"})
    first.add([tmp_path / "a.csv", tmp_path / "b.csv"], condition=0)
    first.save()
    second = Manifest(tmp_path, {"task": "t"})
    second.add([tmp_path / "b.csv"], condition=1)  # rewritten by the second run
    second.save_if_due()
    second.add([tmp_path / "c.csv"], condition=1)
    second.save()
    files = {e["file"]: e["condition"] for e in json.loads((tmp_path / MANIFEST).read_text())["files"]}
    assert files == {"a.csv": 0, "b.csv": 1, "c.csv": 1}

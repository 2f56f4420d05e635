"""One writer per run folder: a second run into a folder in use is refused with the first one's process id and
command, before it reads or writes anything there; the lock of a killed run is taken over with a message."""

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

from lumina_core.cli.main import main
from lumina_core.errors import LuminaError
from lumina_core.training.api import RunExistsError, train
from lumina_core.training.runlock import LOCK_FILE, RunFolderLocked, RunLock

ROOT = Path(__file__).resolve().parents[3]

# another process that takes the lock on a folder, says so, and holds it until its stdin closes
HOLDER = """
import sys
from lumina_core.training.runlock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir), "--as-if-training", "seed=1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_run_into_a_folder_in_use_is_refused_with_the_first_ones_pid_and_command(tmp_path):
    out = tmp_path / "run"
    child = _holder(out)
    try:
        with pytest.raises(RunFolderLocked) as err:
            train(tiny_recipe(out, max_steps=2))
        msg = str(err.value)
        assert isinstance(err.value, LuminaError)  # one paragraph and exit 2 on the command line
        assert f"process {child.pid}" in msg and "--as-if-training seed=1" in msg and "run.output_dir" in msg
        # refused before anything was read or written: no config, no checkpoints, no logs
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
        # --resume and --overwrite are refused the same way (an overwrite would move a live run aside)
        with pytest.raises(RunFolderLocked):
            train(tiny_recipe(out, max_steps=2), overwrite=True)
        assert out.is_dir() and not list(tmp_path.glob("run.old-*"))
    finally:
        child.communicate("")  # the first run ends and releases the folder
    train(tiny_recipe(out, max_steps=2))
    assert (out / "checkpoints" / "step_0000002").is_dir()


def test_lumina_train_into_a_folder_in_use_exits_2_naming_the_holder(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality for the command)

    out = tmp_path / "run"
    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(tiny_recipe(out, max_steps=2), recipe)
    child = _holder(out)
    try:
        assert main(["train", str(recipe), "run.seed=2"]) == 2
    finally:
        child.communicate("")
    err = capsys.readouterr().err
    assert f"is in use by another training run: process {child.pid}" in err
    assert "Traceback" not in err and not (out / "config.yaml").exists()


def test_the_lock_of_a_killed_run_is_taken_over_with_a_message(tmp_path, capsys):
    out = tmp_path / "run"
    child = _holder(out)
    os.kill(child.pid, signal.SIGKILL)  # no release: the lock file still names it
    child.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == child.pid
    train(tiny_recipe(out, max_steps=2))
    said = capsys.readouterr().out
    assert f"locked by a run that ended without releasing it (process {child.pid}" in said
    assert "takes the folder over" in said
    assert (out / LOCK_FILE).read_text() == ""  # released cleanly at the end


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    with pytest.raises(RunExistsError):
        train(tiny_recipe(out, max_steps=2))
    lock = RunLock(out)
    assert lock.acquire() is None  # free and clean: no holder left behind
    lock.release()


def test_overwrite_moves_the_run_aside_and_locks_the_new_folder(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    train(tiny_recipe(out, max_steps=2), overwrite=True)
    (moved,) = tmp_path.glob("run.old-*")
    for folder in (out, moved):  # both locks released, neither left naming a holder
        assert (folder / LOCK_FILE).read_text() == ""


def test_two_locks_on_one_folder_exclude_each_other_in_one_process(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    with first:
        with pytest.raises(RunFolderLocked, match=f"process {os.getpid()}"):
            second.acquire()
        assert not second.held
    with second:  # free again once the first is released
        assert second.held

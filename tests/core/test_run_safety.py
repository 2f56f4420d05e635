"""Nothing lost: a second run does not overwrite the first, damaged checkpoints are named (and passed over on
resume), a changed model is explained, non-finite skipping ends, SIGTERM saves and says so."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe

from lumina_core.errors import LuminaError
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import RunExistsError, load_run, train
from lumina_core.training.module import NonFiniteLossError

TESTS = Path(__file__).resolve().parents[1]


def test_a_second_run_in_the_same_folder_is_refused_and_overwrite_moves_the_first_aside(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    before = ckpt_io.load_weights(out / "checkpoints" / "step_0000002")
    with pytest.raises(RunExistsError, match="--resume last.*--overwrite"):
        train(tiny_recipe(out, max_steps=2, lr=5e-3))
    # nothing was touched
    after = ckpt_io.load_weights(out / "checkpoints" / "step_0000002")
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="give one of them"):
        train(tiny_recipe(out, max_steps=2), resume="last", overwrite=True)
    train(tiny_recipe(out, max_steps=2, lr=5e-3), overwrite=True)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1
    kept = ckpt_io.load_weights(moved[0] / "checkpoints" / "step_0000002")
    assert all(torch.equal(before[k], kept[k]) for k in before)  # the earlier run, intact, aside


@pytest.mark.parametrize("damaged", [ckpt_io.MODEL_FILE, ckpt_io.EMA_FILE, ckpt_io.STATE_FILE])
def test_a_truncated_checkpoint_is_named_and_resume_falls_back(tmp_path, damaged):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=4, ckpt_every=2))
    newest = out / "checkpoints" / "step_0000004"
    f = newest / damaged
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    # sampling / evaluation: the damaged file is named, nothing falls back silently
    with pytest.raises(ckpt_io.CheckpointError, match=f"{damaged}.*damaged.*step_0000002"):
        load_run(tiny_recipe(out), "last")
    with pytest.raises(ckpt_io.CheckpointError, match=damaged):
        load_run(tiny_recipe(out), newest)
    # resume: the newest intact checkpoint, with a warning naming the damaged one
    with pytest.warns(UserWarning, match=f"{damaged}.*falling back to step_0000002"):
        train(tiny_recipe(out, max_steps=4, ckpt_every=2), resume="last")
    assert json.loads((out / "checkpoints" / "step_0000004" / "meta.json").read_text())["step"] == 4
    ckpt_io.verify(out / "checkpoints" / "step_0000004")  # rewritten whole


def test_pickled_code_in_the_state_is_refused_without_advice_to_unpickle(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    ck = out / "checkpoints" / "step_0000002"

    with open(ck / ckpt_io.STATE_FILE, "wb") as fh:  # anything but tensors and primitives
        pickle.dump({"step": 2, "x": Path("/etc")}, fh)
    meta = json.loads((ck / "meta.json").read_text())
    meta.pop("files")  # as if written before sums were recorded: the loader itself must refuse it
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt_io.CheckpointError) as err:
        ckpt_io.load_state(ck)
    assert "never unpickles" in str(err.value) and "weights_only=False" not in str(err.value)


def test_resume_with_a_changed_model_names_keys_and_recipe_values(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    changed = tiny_recipe(out, max_steps=4)
    changed.model.n_layers = 3
    with pytest.raises(ckpt_io.CheckpointError) as err:
        train(changed, resume="last")
    msg = str(err.value)
    assert "missing from the checkpoint" in msg and "layers.2" in msg
    assert "model.n_layers is 2 in the checkpoint and 3 in the recipe" in msg


def test_skipping_non_finite_steps_ends(tmp_path):
    cfg = tiny_recipe(tmp_path / "run", max_steps=50, lr=1e30, skip_nonfinite=True, max_consecutive_skips=3)
    with pytest.raises(NonFiniteLossError, match="4 steps in a row") as err:  # it ends (it skipped for ever)
        train(cfg)
    assert isinstance(err.value, LuminaError)
    assert re.search(r"at step [12] ", str(err.value)), str(err.value)  # at the first bad step, not step 50


CHILD = """
import sys
sys.path.insert(0, {tests!r})
import fixtures.toy_plugin  # registers the toy modality
from lumina_core.cli.main import main
raise SystemExit(main(["train", {recipe!r}] + sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_143_and_resume_continues_exactly(tmp_path):
    from omegaconf import OmegaConf

    out = tmp_path / "run"
    recipe = tmp_path / "toy.yaml"
    # one thread everywhere: the child and the runs in this process must do the same floating-point sums
    one = {"ckpt_every": 100000, "warmup_steps": 0, "threads": 1}
    OmegaConf.save(tiny_recipe(out, max_steps=100000, log_every=1, **one), recipe)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS), recipe=str(recipe))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen = 0
    for line in child.stdout:  # wait until a few steps have run
        if line.startswith("step "):
            seen += 1
            if seen == 3:
                break
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    pointer = out / "checkpoints" / "last"
    assert pointer.is_file()
    stopped = ckpt_io.resolve_checkpoint("last", out)
    step = json.loads((stopped / "meta.json").read_text())["step"]
    assert step >= 3
    # resuming continues exactly: two more steps equal an uninterrupted run of step + 2 steps
    threads = torch.get_num_threads()
    try:
        train(tiny_recipe(out, max_steps=step + 2, **one), resume="last")
        straight = train(tiny_recipe(tmp_path / "straight", max_steps=step + 2, **one))
    finally:
        torch.set_num_threads(threads)
    a = ckpt_io.load_weights(ckpt_io.resolve_checkpoint("last", out))
    b = ckpt_io.load_weights(ckpt_io.resolve_checkpoint("last", straight))
    assert all(torch.equal(a[k], b[k]) for k in a)

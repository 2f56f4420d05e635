"""Resume restores everything: N steps + resume N steps == 2N steps, bitwise on CPU; a SIGKILLed run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import train

TESTS = Path(__file__).resolve().parents[2]  # tests/ (the fixtures package)


def _same_checkpoint(a: Path, b: Path) -> None:
    for which in ("model", "ema"):
        wa, wb = ckpt_io.load_weights(a, which), ckpt_io.load_weights(b, which)
        assert set(wa) == set(wb)
        bad = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert not bad, f"{which} weights differ after resume: {bad[:5]}"
    sa, sb = ckpt_io.load_state(a), ckpt_io.load_state(b)
    assert sa["step"] == sb["step"] and sa["data_position"] == sb["data_position"]
    assert torch.equal(sa["rng"]["train_generator"], sb["rng"]["train_generator"])
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"]
    for k, st in sa["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg"], sb["optimizer"]["state"][k]["exp_avg"])


def test_n_steps_plus_resume_equals_2n_steps_bitwise(tmp_path):
    # two tasks (data positions), a warm-up that spans the interruption (LR schedule), condition dropout (RNG).
    # (A cosine schedule depends on train.max_steps, so the two halves would be different runs.)
    tasks = [seq_task("cls"), {**seq_task("free", conditioned=False, lengths=[8, 16, 12]), "loss_weight": 0.5}]
    kw = dict(warmup_steps=4, ckpt_every=3, preview_every=0)
    straight = train(tiny_recipe(tmp_path / "straight", tasks, max_steps=6, **kw))
    first = train(tiny_recipe(tmp_path / "split", tasks, max_steps=3, **kw))
    resumed = train(tiny_recipe(tmp_path / "split", tasks, max_steps=6, **kw), resume="last")
    assert first == resumed
    _same_checkpoint(straight / "checkpoints" / "step_0000006", resumed / "checkpoints" / "step_0000006")


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from fixtures.toy_plugin import tiny_recipe
from lumina_core.training.api import train
train(tiny_recipe({out!r}, max_steps=100000, ckpt_every=1, log_every=1000, preview_every=0))
"""


@pytest.mark.slow
def test_sigkilled_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS), out=str(out))],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    pointer = out / "checkpoints" / "last"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if pointer.is_file() and int(pointer.read_text().strip().split("_")[1]) >= 3:
                break
            if child.poll() is not None:
                pytest.fail(f"training child exited early: {child.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("training child wrote no checkpoint in time")
        os.kill(child.pid, signal.SIGKILL)  # mid-training, possibly mid-save
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    ckpt = ckpt_io.resolve_checkpoint("last", out)  # the pointer names a complete checkpoint
    k = ckpt_io.load_state(ckpt)["step"]
    assert k >= 3
    # resume to k + 2 steps, and compare with an uninterrupted run of k + 2 steps, on the child's one thread
    # (bitwise equality holds for the same thread count; matmul reductions split differently across threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train(tiny_recipe(out, max_steps=k + 2, ckpt_every=1000, preview_every=0), resume="last")
        assert not any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())
        straight = train(tiny_recipe(tmp_path / "straight", max_steps=k + 2, ckpt_every=1000, preview_every=0))
    finally:
        torch.set_num_threads(threads)
    name = ckpt_io.checkpoint_name(k + 2)
    _same_checkpoint(straight / "checkpoints" / name, resumed / "checkpoints" / name)

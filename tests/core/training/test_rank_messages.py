"""What the ranks of a data-parallel run say when it ends early, checked without starting processes: every rank
knows the checkpoint rank 0 wrote (a SIGTERM on rank 1 said "checkpoint None"), a lost peer is recognised from
the collective's error, and the ``--resume last`` command is the user's own command line."""

from __future__ import annotations

from types import SimpleNamespace

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.callbacks import CheckpointEvery
from lumina_core.training.ranks import exit_status_text, is_lost_peer, resume_command
from lumina_core.training.run import _preempted, rank_lost_text


def rank(global_rank: int, step: int, last=None) -> SimpleNamespace:
    return SimpleNamespace(
        global_rank=global_rank, world=2, step=step, sharded=False, last_checkpoint=last,
        training_state=lambda: {"step": step}, trainable_state=dict, ema=SimpleNamespace(state_dict=dict),
    )  # fmt: skip


def test_a_rank_other_than_0_knows_the_checkpoint_rank_0_wrote(tmp_path):
    module = rank(1, 4)
    assert CheckpointEvery(tmp_path, 2).save(module) is None  # rank 0 writes; rank 1 writes nothing
    assert not list(tmp_path.iterdir())
    assert module.last_checkpoint == tmp_path / ckpt_io.checkpoint_name(4)
    message = str(_preempted(module, tmp_path))
    assert f"the newest checkpoint is {tmp_path / 'step_0000004'}" in message and "None" not in message


def test_before_any_checkpoint_the_message_says_so(tmp_path):
    message = str(_preempted(rank(1, 1), tmp_path))
    assert "no checkpoint was written yet" in message and "None" not in message


def test_a_dead_rank_is_named_with_how_it_ended_and_the_resume_command(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "sys.argv", ["/venv/bin/lumina", "train", "r.yaml", "train.devices=2", "--resume", "runs/x/step_2"]
    )
    gloo = RuntimeError("[gloo/transport/tcp/pair.cc:538] Read error [127.0.0.1]:40878: Connection reset by peer")
    assert is_lost_peer(gloo) and not is_lost_peer(RuntimeError("shape mismatch"))
    text = rank_lost_text(rank(0, 6, tmp_path / "step_0000006"), [(1, -9)], tmp_path, gloo)
    assert text.startswith("rank 1 of 2 died (killed by SIGKILL) during step 7")
    assert f"The newest checkpoint is {tmp_path / 'step_0000006'}" in text
    assert text.endswith("Continue with `lumina train r.yaml train.devices=2 --resume last`")
    assert exit_status_text(2) == "exit status 2; its own message is above"
    assert resume_command(["python", "x.py"]) == "lumina train RECIPE [KEY=VALUE ...] --resume last"
    assert resume_command(["lumina", "train", "r.yaml", "--overwrite"]) == "lumina train r.yaml --resume last"


WATCHED = """
import os, signal, subprocess, sys
from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lumina_core.training.ranks import speak_before_the_launcher_kills

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
watcher = _ChildProcessObserver(main_pid=os.getpid(), child_processes=[child], sleep_period=60)  # Lightning's own watcher
watcher.start()  # its thread first sleeps a minute: the test makes its check below
assert speak_before_the_launcher_kills(lambda dead: f"rank {dead[0][0]} died with {dead[0][1]}")
child.send_signal(signal.SIGKILL)
child.wait()
watcher._run()  # what its thread does every 5 s: finds the dead child and ends the run
print("not reached")
"""


def test_lightnings_watcher_says_which_rank_died_before_it_ends_the_run(tmp_path):
    """Where the watcher sees the dead rank before rank 0's collective fails, it prints the paragraph and ends
    the run with exit status 2 (it sent SIGKILL to rank 0 itself: exit 137, nothing said)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", WATCHED], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "lumina train: error: rank 1 died with -9" in done.stderr
    assert "not reached" not in done.stdout and "Traceback" not in done.stderr

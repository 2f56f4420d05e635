"""A rank killed with SIGKILL in the middle of a 2-process run (gloo) leaves a run that ``--resume last`` continues.

The run is the real ``lumina train ... train.devices=2``; rank 1 is the child process Lightning's launcher
started with ``LOCAL_RANK=1``. After a checkpoint exists it is killed outright (no handler runs, as when a node
dies or the OOM killer strikes); rank 0 is then stopped like a scheduler stops a job (its collective fails,
or SIGTERM, then SIGKILL). The newest complete checkpoint must verify, and a second ``lumina train --resume
last`` on 2 processes must continue from it to the end. Rank 0 says so in one paragraph (exit 2): which rank
died, how, the newest checkpoint and the ``--resume last`` command, with no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumina_core.training import checkpoint as ckpt_io

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "digits_tiny.yaml"


def command(out: Path, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "lumina"), "train", str(RECIPE), f"run.output_dir={out}",
        "train.devices=2", "train.threads=1", "train.log_every=1", "train.warmup_steps=0",
        "train.lr_schedule=constant", "tasks.0.data.batch_size=4", "model.n_layers=1", "train.ckpt_every=2", *extra,
    ]  # fmt: skip


def environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LUMINA_CACHE_DIR": str(tmp_path / "cache")}
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def local_rank_of(pid: int) -> str | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"LOCAL_RANK="):
            return item.split(b"=", 1)[1].decode()
    return None


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds rank 1 through /proc (Linux)")
def test_sigkill_of_rank_one_leaves_a_resumable_run(tmp_path):
    out, env = tmp_path / "run", environment(tmp_path)
    log = open(tmp_path / "killed.log", "w")
    job = subprocess.Popen(
        command(out, "train.max_steps=10000"), cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        # any complete checkpoint (the first ones are pruned as training goes on: keep=3)
        wait_for(lambda: (out / "checkpoints" / "last").is_file(), 400, "a checkpoint")
        ranks = [p for p in children(job.pid) if local_rank_of(p) == "1"]
        assert len(ranks) == 1, f"expected one rank-1 child of {job.pid}, found {ranks}"
        os.kill(ranks[0], signal.SIGKILL)
        try:  # rank 0's next collective fails; if it waits instead, stop it as a scheduler would
            job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            job.send_signal(signal.SIGTERM)
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        log.close()
    assert job.returncode != 0, "the job must not end as if it had finished"
    killed_log = (tmp_path / "killed.log").read_text()
    # one paragraph naming the rank that died and the command that continues, exit 2; no traceback
    assert job.returncode == 2, killed_log[-3000:]
    assert "Traceback" not in killed_log and "[rank0]:" not in killed_log, killed_log[-3000:]
    assert "lumina train: error: rank 1 of 2 died (killed by SIGKILL) during step " in killed_log
    assert "train.devices=2" in killed_log and "--resume last`" in killed_log
    saved = ckpt_io.resolve_checkpoint("last", out)  # the newest complete checkpoint, verified
    step = int(ckpt_io.load_state(saved)["step"])
    assert step >= 2 and step % 2 == 0, killed_log[-2000:]

    resumed = subprocess.run(
        command(out, f"train.max_steps={step + 2}", "--resume", "last"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"at step {step}" in resumed.stdout
    assert f"step {step + 1}/{step + 2}" in resumed.stdout and f"step {step + 2}/{step + 2}" in resumed.stdout
    final = ckpt_io.resolve_checkpoint("last", out)
    assert final.name == ckpt_io.checkpoint_name(step + 2)
    assert len(ckpt_io.load_state(final)["rng_ranks"]) == 2

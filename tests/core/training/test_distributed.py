"""Data-parallel training on the CPU: 2 processes through Lightning's DDP (gloo), launched by `lumina train`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures.state_compare import same_state

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.data import ResumableSampler

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "digits_tiny.yaml"


def test_ranks_read_disjoint_batches_and_every_item_once_per_epoch():
    n, bs, world = 40, 4, 2
    streams = []
    for rank in range(world):
        it = iter(ResumableSampler(n, seed=3, rank=rank, world=world, batch_size=bs))
        streams.append([next(it) for _ in range(n // world)])
    assert set(streams[0]).isdisjoint(streams[1])
    assert sorted(streams[0] + streams[1]) == list(range(n))  # one epoch across the ranks
    single = iter(ResumableSampler(n, seed=3))
    global_order = [next(single) for _ in range(n)]
    assert streams[0][:bs] == global_order[:bs] and streams[1][:bs] == global_order[bs : 2 * bs]
    # resuming rank 1 after 3 of its batches continues its own stream
    resumed = iter(ResumableSampler(n, seed=3, start=3 * bs * world, rank=1, world=world, batch_size=bs))
    assert [next(resumed) for _ in range(bs)] == streams[1][3 * bs : 4 * bs]


def lumina_train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [
        str(Path(sys.executable).parent / "lumina"), "train", str(RECIPE), f"run.output_dir={out}",
        "train.devices=2", "train.threads=1", "train.log_every=1", "train.warmup_steps=0", "train.lr_schedule=constant",
        "tasks.0.data.batch_size=4", "model.n_layers=1", *extra,
    ]  # fmt: skip
    return subprocess.run(args, cwd=out.parent, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_processes_resume_bitwise_and_write_once(tmp_path):
    straight = lumina_train(tmp_path / "a", "train.max_steps=4", "train.ckpt_every=2")
    assert straight.returncode == 0, straight.stdout[-2000:] + straight.stderr[-3000:]
    assert straight.stdout.count("done: run folder") == 1  # the second rank is quiet
    assert "2 data-parallel processes" in straight.stdout
    first = lumina_train(tmp_path / "b", "train.max_steps=2", "train.ckpt_every=2")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = lumina_train(tmp_path / "b", "train.max_steps=4", "train.ckpt_every=2", "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = ckpt_io.load_weights(tmp_path / "a" / "checkpoints" / "step_0000004", "model")
    b = ckpt_io.load_weights(tmp_path / "b" / "checkpoints" / "step_0000004", "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    state = ckpt_io.load_state(tmp_path / "a" / "checkpoints" / "step_0000004")
    assert len(state["rng_ranks"]) == 2  # every rank's random state is saved
    assert not torch.equal(state["rng_ranks"][0]["train_generator"], state["rng_ranks"][1]["train_generator"])
    assert state["data_position"] == {"digits": 4}  # batches per rank


@pytest.mark.slow
def test_task_moments_on_two_processes_resume_bitwise(tmp_path):
    """Per-task AdamW moments (train.composition: [task_moments]) under DDP: every rank draws the same task at a
    step, so every rank swaps the same moments in; a run stopped at step 3 and resumed to 6 equals the one that
    ran 6 steps, weights and every task's moments, bit for bit. With task_modulation and task_lora too (one
    case for the three, to keep the suite's time): each step leaves the other task's own modulation and
    low-rank factors without a gradient, and the trunk's frozen modulation."""
    methods = ["task_moments", "task_modulation", "task_lora"]
    recipe = ROOT / "recipes" / "multitask" / "digits_draw_read_tiny.yaml"
    common = (
        "train.mixing=weighted", f"train.composition=[{','.join(methods)}]", "tasks.0.data.batch_size=4",
        "tasks.1.data.batch_size=4", "train.ckpt_every=3", "model.n_layers=1", "train.lr_schedule=constant",
    )  # fmt: skip

    def run(out: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
        args = [
            str(Path(sys.executable).parent / "lumina"), "train", str(recipe), f"run.output_dir={out}",
            "train.devices=2", "train.threads=1", "train.warmup_steps=0", f"train.max_steps={steps}", *common, *extra,
        ]  # fmt: skip
        return subprocess.run(args, cwd=out.parent, env=env, capture_output=True, text=True, timeout=600)

    straight = run(tmp_path / "a", 6)
    assert straight.returncode == 0, straight.stdout[-2000:] + straight.stderr[-3000:]
    assert "2 data-parallel processes" in straight.stdout
    first = run(tmp_path / "b", 3)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run(tmp_path / "b", 6, "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ck_a, ck_b = (tmp_path / d / "checkpoints" / "step_0000006" for d in ("a", "b"))
    a, b = ckpt_io.load_weights(ck_a, "model"), ckpt_io.load_weights(ck_b, "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = ckpt_io.load_state(ck_a), ckpt_io.load_state(ck_b)
    assert sa["composition"]["methods"] == methods
    assert same_state(sa["composition"], sb["composition"])
    for part in (".task_modulation.", ".task_lora."):  # each task trained its own parts on both ranks alike
        own = [v for k, v in a.items() if part in k and ".down." not in k]
        assert own and any(v.abs().sum() > 0 for v in own), part
    moments = sa["composition"]["state"][0]
    other = ({"draw", "read"} - {moments["active"]}).pop()
    # the task the optimiser does not hold: its own set, its own steps
    assert set(moments["moments"]) == {other}
    assert {int(st["step"]) for st in moments["moments"][other].values()} == {sa["data_position"][other]}

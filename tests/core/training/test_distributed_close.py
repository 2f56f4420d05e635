"""Every rank destroys its process group before the interpreter exits.

A gloo group left to interpreter finalisation can abort a run that succeeded ("terminate called without an
active exception", SIGABRT on one rank, which made Lightning's launcher kill the other): seen once in CI on
the resumed half of ``test_two_processes_resume_bitwise_and_write_once``. The abort is a race, so these
tests check the cause deterministically: after ``train`` returns, no process group is left open."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from lumina_core.training.ranks import close_process_group


def _open_group(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)


def test_close_process_group_destroys_the_group_and_is_a_no_op_without_one(tmp_path):
    close_process_group(synchronise=True)  # no group: nothing happens
    _open_group(tmp_path)
    try:
        close_process_group(synchronise=True)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_train_leaves_no_process_group_open(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    from fixtures.toy_plugin import two_task_recipe as _recipe

    from lumina_core.training.api import train

    _open_group(tmp_path)  # as a launcher would have before the trainer ran
    try:
        train(_recipe(tmp_path / "run", 2))
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

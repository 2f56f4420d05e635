"""Loss curves written at the end of training: the logged numbers, per task, across a resume."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import pytest

# matplotlib reads its configuration and writes its font cache under ~ unless told otherwise
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="lumina-test-mpl-"))

from fixtures.toy_plugin import two_task_recipe as _recipe

from lumina_core.training.curves import moving_average, read_losses, write_curves


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_training_writes_per_task_curves_that_survive_a_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    from lumina_core.training.api import train

    run_dir = tmp_path / "run"
    train(_recipe(run_dir, 3))
    curves = run_dir / "curves"
    rows = _rows(curves / "loss.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"step", "train/loss", "train/loss_near", "train/loss_far"}
    for r in rows:  # the total is the weighted sum of what each task logged
        total = float(r["train/loss_near"]) + 0.5 * float(r["train/loss_far"])
        assert float(r["train/loss"]) == pytest.approx(total, rel=1e-4)
    svg = (curves / "loss.svg").read_text()
    assert all(name in svg for name in ("near", "far", "total (weighted)"))
    first_png = (curves / "loss.png").read_bytes()

    train(_recipe(run_dir, 5), resume="last")
    rows2 = _rows(curves / "loss.csv")
    assert [int(r["step"]) for r in rows2] == [1, 2, 3, 4, 5]  # the whole run, not only the resumed part
    assert rows2[:3] == rows
    assert (curves / "loss.png").read_bytes() != first_png


def test_write_curves_single_task_and_nothing_logged(tmp_path):
    losses = {"train/loss": {1: 2.0, 2: 1.0}, "train/loss_only": {1: 2.0, 2: 1.0}}
    paths = write_curves(losses, tmp_path / "one")
    assert [p.name for p in paths] == ["loss.csv", "loss.png", "loss.svg"]
    assert "total" not in paths[2].read_text()  # one task: its panel is the total
    assert write_curves({}, tmp_path / "none") == [] and not (tmp_path / "none").exists()
    assert read_losses(tmp_path / "no_such_dir") == {}


def test_moving_average():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([4.0], 10) == [4.0]


def test_logged_total_is_the_mean_since_the_last_line_like_the_task_losses(tmp_path, monkeypatch):
    """With log_every=2 each logged task loss is the mean of two steps; the total beside it must be the mean
    of the same two steps' totals (it was the last step's alone, which did not match the task losses)."""
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    from lumina_core.training.api import train

    cfg = _recipe(tmp_path / "run", 4)
    cfg.train.log_every = 2
    train(cfg)
    rows = _rows(tmp_path / "run" / "curves" / "loss.csv")
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r in rows:
        total = float(r["train/loss_near"]) + 0.5 * float(r["train/loss_far"])
        assert float(r["train/loss"]) == pytest.approx(total, rel=1e-5)

"""benchmarks/multitask_transfer.py: the shipped recipe where two tasks share content trains a few steps
composed, with a scored checkpoint mid-run (the curve), and the plan, tables and figure come out right."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import multitask as mt  # noqa: E402
import multitask_transfer as bench  # noqa: E402

RECIPE = ROOT / bench.DEFAULT_RECIPE


def args(tmp_path, **kw):
    import argparse

    base = dict(recipe=str(RECIPE), steps=None, seeds=[0, 1], threads=1, out=str(tmp_path), override=[])
    return argparse.Namespace(**{**base, **kw})


def test_the_shipped_recipe_trains_composed_and_scores_every_curve_step(tmp_path):
    """4 steps of both tasks, a checkpoint scored at step 2 and the last at 4 (8 held-out items each)."""
    from omegaconf import OmegaConf

    cfg = bench.mt.load(
        RECIPE,
        [f"run.output_dir={tmp_path / 'run'}", "train.max_steps=4", "train.warmup_steps=1",
         "tasks.0.eval.num_samples=8", "tasks.1.eval.num_samples=8", "tasks.0.sampling.steps=2"],
    )  # fmt: skip
    spec = {"recipe": OmegaConf.to_container(cfg, resolve=False), "curve": bench.curve_steps(4, 2)}
    timing = mt.run_worker(spec)
    assert timing["step"] == 4 and timing["data_position"] == {"draw": 4, "read": 4}  # every task every step
    assert {t: v["steps"] for t, v in timing["tasks"].items()} == {"draw": 4, "read": 4}
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert sorted(curve, key=int) == ["2", "4"]
    for metrics in curve.values():
        assert 0.0 <= metrics["draw/digit_acc"] <= 1.0 and 0.0 <= metrics["read/accuracy"] <= 1.0
    assert curve["4"] == json.loads((tmp_path / "run" / "bench_metrics.json").read_text())
    # the step-2 checkpoint is the run at step 2, not a copy of the last one
    from lumina_core.training import checkpoint as ckpt_io

    mid = ckpt_io.load_weights(tmp_path / "run" / "curve" / "step_0000002", "ema")
    last = ckpt_io.load_weights(ckpt_io.resolve_weights("last", tmp_path / "run"), "ema")
    assert mid.keys() == last.keys() and any(not mid[k].equal(last[k]) for k in mid)
    # a run stopped early (no curve.json yet): --score-stopped scores the curve checkpoints it left, the same way
    (tmp_path / "run" / "curve.json").unlink()
    spec_file = tmp_path / "run.spec.json"
    spec_file.write_text(json.dumps(spec))
    again = bench.score_stopped(spec_file)
    assert list(again) == [2]
    assert again[2] == pytest.approx(
        curve["2"], rel=1e-5, nan_ok=True
    )  # nan: recall of a class absent from 8


def test_plan_pairs_each_seed_with_each_task_alone_at_the_same_steps(tmp_path):
    runs, groups = bench.plan(args(tmp_path, steps=300))
    assert sorted(runs) == sorted(
        ["composed_s0", "alone_draw_s0", "alone_read_s0", "composed_s1", "alone_draw_s1", "alone_read_s1"]
    )
    assert groups[1]["counts"] == {"draw": 300, "read": 300}
    alone = runs["alone_read_s1"]
    assert [t.name for t in alone.tasks] == ["read"] and alone.train.max_steps == 300 and alone.run.seed == 1
    assert alone.model.dim == runs["composed_s1"].model.dim and alone.train.lr == runs["composed_s1"].train.lr
    assert bench.curve_steps(300, 100) == [100, 200, 300] and bench.curve_steps(250, 100) == [100, 200, 250]
    with pytest.raises(ValueError, match="expected train.mixing: all"):
        bench.plan(args(tmp_path, override=["train.mixing=weighted"]))


def synthetic_curves():
    def m(d, r):
        return {"draw/digit_acc": d, "draw/chance_digit": 0.1, "read/accuracy": r}

    curves = {
        "composed_s0": {100: m(0.5, 0.8), 200: m(0.7, 0.9)},
        "alone_draw_s0": {100: m(0.4, 0.0), 200: m(0.6, 0.0)},
        "alone_read_s0": {100: m(0.0, 0.7), 200: m(0.0, 0.95)},
        "composed_s1": {100: m(0.3, 0.6), 200: m(0.9, 0.9)},
        "alone_draw_s1": {100: m(0.2, 0.0), 200: m(0.6, 0.0)},
        "alone_read_s1": {100: m(0.0, 0.5), 200: m(0.0, 0.85)},
    }
    groups = {
        s: {"composed": f"composed_s{s}", "alone": {"draw": f"alone_draw_s{s}", "read": f"alone_read_s{s}"},
            "counts": {"draw": 200, "read": 200}}
        for s in (0, 1)
    }  # fmt: skip
    return curves, groups


def test_tables_give_each_seed_and_the_mean(tmp_path):
    curves, groups = synthetic_curves()
    results = {k: {"metrics": v[200]} for k, v in curves.items()}
    rows = bench.rows(results, groups)
    table = bench.table(rows)
    assert "| draw | digit_acc | 0 | 200 | 0.700 | 0.600 | +0.100 | 1.167x |" in table
    assert "| draw | digit_acc | **mean** | | **0.800** | **0.600** | **+0.200** | **1.333x** |" in table
    assert "| read | accuracy | **mean** | | **0.900** | **0.900** | **+0.000** | **1.000x** |" in table
    curves["alone_read_s1"][300] = curves["composed_s1"][300] = {}  # a step not every run reached
    step, at = bench.rows_at_common_step(curves, groups)
    assert step == 200 and bench.table(at) == table
    with pytest.raises(FileNotFoundError, match="alone_draw_s1"):
        bench.rows_at_common_step({k: v for k, v in curves.items() if k != "alone_draw_s1"}, groups)
    steps = bench.curve_table(curves, groups)
    assert (
        "| draw | 100 | 0.400 | 0.300 | +0.100 |" in steps
        and "| read | 200 | 0.900 | 0.900 | +0.000 |" in steps
    )


def test_curve_figure(tmp_path):
    pytest.importorskip("matplotlib")
    curves, groups = synthetic_curves()
    paths = bench.figure(curves, groups, "synthetic", out_dir=str(tmp_path))
    assert sorted(p.name for p in paths) == ["multitask_transfer_curve.png", "multitask_transfer_curve.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)

"""benchmarks/multitask.py without training: the per-task step counts follow the recipe's draw sequence, the
single-task recipes keep one task on the same trunk, and the tables and figures come out of a synthetic
results dict (so the script cannot rot between full runs)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import multitask as bench  # noqa: E402

RECIPE = ROOT / bench.DEFAULT_RECIPE


def timing(tasks: dict[str, tuple[int, float, float]], setup: float = 20.0) -> dict:
    """A worker's timing.json: ``{task: (steps, cpu_s, wall_s)}``."""
    per = {t: {"steps": n, "cpu_s": c, "wall_s": w} for t, (n, c, w) in tasks.items()}
    cpu, wall = sum(v["cpu_s"] for v in per.values()), sum(v["wall_s"] for v in per.values())
    return {
        "tasks": per,
        "train_loop": {"cpu_s": cpu, "wall_s": wall},
        "train_process": {"cpu_s": cpu + setup, "wall_s": wall + setup},
        "eval": {"cpu_s": 5.0, "wall_s": 6.0},
        "data_position": {t: n for t, (n, _, _) in tasks.items()},
    }


def synthetic() -> dict:
    multi_metrics = {
        "shapes/adherence": 0.60, "shapes/chance_adherence": 1 / 60, "shapes/shape_acc": 0.62,
        "tones/adherence": 0.70, "tones/adherence_shuffled": 0.35,
        "points/nn_class_acc": 0.75, "points/cd_1nna": 0.70, "points/nn_class_acc/sphere": 0.5,
    }  # fmt: skip
    runs = {
        bench.MULTI: {
            "metrics": multi_metrics,
            "timing": timing(
                {"shapes": (90, 27.0, 54.0), "tones": (50, 20.0, 40.0), "points": (60, 30.0, 60.0)}
            ),
        },
        "shapes": {
            "metrics": {
                "shapes/adherence": 0.50,
                "shapes/chance_adherence": 1 / 60,
                "shapes/shape_acc": 0.52,
            },
            "timing": timing({"shapes": (90, 18.0, 36.0)}),
        },
        "tones": {
            "metrics": {"tones/adherence": 0.80, "tones/adherence_shuffled": 0.36},
            "timing": timing({"tones": (50, 16.0, 30.0)}),
        },
        "points": {
            "metrics": {"points/nn_class_acc": 0.75, "points/cd_1nna": 0.65},
            "timing": timing({"points": (60, 25.0, 50.0)}),
        },
    }
    return {
        "recipe": str(RECIPE), "steps": 200, "draw_weights": {"shapes": 0.45, "tones": 0.25, "points": 0.3},
        "task_steps": {"shapes": 90, "tones": 50, "points": 60}, "recipe_steps": 4000,
        "recipe_task_steps": {"shapes": 1800, "tones": 1000, "points": 1200}, "note": "synthetic", "runs": runs,
    }  # fmt: skip


def test_task_step_counts_follow_the_draw_sequence():
    cfg = bench.load(RECIPE, ["train.max_steps=400"])
    counts = bench.task_step_counts(cfg, 400)
    assert sum(counts.values()) == 400
    # the shares follow the draw weights (binomial spread at 400 draws: at most +-0.025)
    total = sum(float(t.draw_weight) for t in cfg.tasks)
    for t in cfg.tasks:
        assert abs(counts[t.name] / 400 - float(t.draw_weight) / total) < 0.08, counts
    # exact, not expected: recounting the draws of the first 10 steps one by one gives the same tasks
    from lumina_core.training.data import draw_task

    weights = [float(t.draw_weight) for t in cfg.tasks]
    first = [cfg.tasks[draw_task(weights, int(cfg.run.seed), i)].name for i in range(10)]
    assert bench.task_step_counts(cfg, 10) == {n: first.count(n) for n in ("shapes", "tones", "points")}
    cfg.train.mixing = "all"
    assert bench.task_step_counts(cfg, 7) == {"shapes": 7, "tones": 7, "points": 7}


def test_single_task_recipe_keeps_one_task_on_the_same_trunk(tmp_path):
    from lumina_core.config.typed import typed_recipe

    cfg = bench.load(RECIPE)
    one = bench.single_task_recipe(cfg, "points", 123, 384, tmp_path / "points_alone")
    typed = typed_recipe(one)
    assert [t.name for t in typed.tasks] == ["points"]
    assert typed.train.max_steps == 123 and typed.model.context_dim == 384
    assert typed.model.n_layers == cfg.model.n_layers and typed.model.preset == cfg.model.preset
    assert typed.run.output_dir == str(tmp_path / "points_alone")
    # alone, the task trains plainly: the recipe's composition method (task_moments) needs several tasks
    assert list(cfg.train.composition) != [] and list(typed.train.composition) == []
    assert len(cfg.tasks) == 3 and cfg.train.max_steps != 123  # the composed recipe is untouched
    with pytest.raises(ValueError, match="no task 'video'"):
        bench.single_task_recipe(cfg, "video", 10, 384, tmp_path)


def test_tables_put_multi_task_and_alone_side_by_side():
    saved = synthetic()
    tasks = list(saved["task_steps"])
    quality = bench.quality_table(saved["runs"], tasks)
    assert "| shapes | **adherence** | 0.600 | 0.500 | 1.20x | 0.017 |" in quality
    assert "| tones | **adherence** | 0.700 | 0.800 | 0.87x | 0.350 / 0.360 |" in quality
    assert "| points | **nn_class_acc** | 0.750 | 0.750 | 1.00x | 0.125 |" in quality
    full = bench.quality_table(saved["runs"], tasks, all_metrics=True)
    assert "| points | cd_1nna | 0.700 | 0.650 | 1.08x |" in full
    assert "sphere" not in full  # per-class breakdowns stay in metrics.json
    times = bench.time_table(saved["runs"], tasks)
    # shapes: 27 s / 90 steps composed vs 18 s / 90 alone -> 300 vs 200 ms, 1.50x
    assert "| shapes | 90 | 200 | 300 | 1.50x |" in times
    # whole loop: 77 s composed vs 59 s for the three alone runs together
    assert "| 59 s (sum) | 77 s | 1.31x |" in times
    estimate = bench.recipe_estimate(saved["runs"], tasks, 4000, saved["recipe_task_steps"])
    assert "1540 s" in estimate  # 1800 * 0.3 + 1000 * 0.4 + 1200 * 0.5
    assert "0.600" in bench.report(saved)


def test_figures_and_table_from_a_saved_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    saved = synthetic()
    bars = bench.headline_bars(saved["runs"], list(saved["task_steps"]))
    assert bars["alone"]["tones adherence"] == 0.80 and bars["chance"]["points nn_class_acc"] == 0.125
    paths = bench.figures(saved["runs"], list(saved["task_steps"]), "synthetic", out_dir=tmp_path)
    assert sorted(p.name for p in paths) == [
        "multitask_scores.png", "multitask_scores.svg", "multitask_step_time.png", "multitask_step_time.svg",
    ]  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in paths)
    # --table-from prints the tables of a results file without training anything
    path = tmp_path / "multitask.json"
    path.write_text(json.dumps(saved))
    bench.main(["--table-from", str(path)])
    assert "| tones | **adherence** | 0.700 | 0.800 | 0.87x |" in capsys.readouterr().out


def test_positions_that_disagree_with_the_plan_are_refused():
    saved = synthetic()
    bench.check_positions(saved["runs"], saved["task_steps"])
    saved["runs"][bench.MULTI]["timing"]["data_position"]["tones"] = 49
    with pytest.raises(ValueError, match="planned 50 steps"):
        bench.check_positions(saved["runs"], saved["task_steps"])


def test_reuse_without_finished_runs_says_what_is_missing(tmp_path):
    cfg = bench.load(RECIPE, [f"run.output_dir={tmp_path / 'multitask'}"])
    with pytest.raises(FileNotFoundError, match="timing.json"):
        bench.collect({bench.MULTI: cfg})


def test_a_recipe_whose_tasks_it_does_not_know_is_refused_before_training_with_the_option_to_use(
    tmp_path, monkeypatch, capsys
):
    """--mechanisms on a user's recipe with other task names: refused before any run starts, naming
    --headline; with --headline (and --distribution) the tasks are judged as told."""
    import copy

    monkeypatch.setattr(bench, "HEADLINE", copy.deepcopy(bench.HEADLINE))
    monkeypatch.setattr(bench, "DISTRIBUTION", copy.deepcopy(bench.DISTRIBUTION))
    started = []
    monkeypatch.setattr(bench, "launch", lambda runs, args: started.append(runs))
    renamed = ["tasks.0.name=img", "tasks.2.name=clouds"]
    argv = ["--mechanisms", "plain", "--steps", "8", "--out", str(tmp_path), "--override", *renamed]
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2 and not started
    assert re.search(r"task\(s\) img, clouds: .*--headline img=METRIC\[:CHANCE\] clouds=", capsys.readouterr().err)
    bench.apply_judging(["img=adherence:chance_adherence", "clouds=nn_class_acc:1/8"], ["img=fid"])
    assert bench.HEADLINE["clouds"][:2] == ("nn_class_acc", 0.125)
    assert bench.HEADLINE["img"][:2] == ("adherence", "chance_adherence") and bench.DISTRIBUTION["img"] == "fid"
    assert bench.unjudged(["img", "tones", "clouds"]) is None
    bench.apply_judging(["x=score"], [])
    assert bench.HEADLINE["x"][:2] == ("score", "chance")  # the checker's own chance key by default
    with pytest.raises(ValueError, match="TASK=METRIC"):
        bench.apply_judging(["adherence"], [])
    with pytest.raises(SystemExit) as exit_info:  # on the command line: one usage line, exit 2
        bench.main([*argv, "--headline", "adherence"])
    assert exit_info.value.code == 2 and "TASK=METRIC[:CHANCE]; got 'adherence'" in capsys.readouterr().err
    # repeated options add up; with both tasks judged the plan goes on to train
    bench.main([*argv, "--headline", "img=adherence", "--headline", "clouds=nn_class_acc:1/8", "--only", "composed_plain"])
    assert [list(runs) for runs in started] == [["composed_plain"]]
    # a task with no distribution metric gets '-' in the table instead of a KeyError
    row = {"mechanism": "plain", "mixing": "weighted", "steps": 8, "counts": {"x": 8}, "mean_ratio": 1.0,
           "min_ratio": 1.0, "x": {"head": 0.5, "head_alone": 0.5, "dist": None, "dist_alone": None}}  # fmt: skip
    assert "| x score | x - |" in bench.mechanism_table([row], ["x"])

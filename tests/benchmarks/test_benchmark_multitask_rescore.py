"""benchmarks/multitask_rescore.py without training: the recipe it scores with (more held-out items, settings per
task), the per-item verdicts it reads from an evaluation's manifest, and the paired comparison of a composed run
with each task alone (or of any two runs) on synthetic results."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import multitask as mt  # noqa: E402
import multitask_rescore as rescore  # noqa: E402

RECIPE = ROOT / mt.DEFAULT_RECIPE


def test_samples_take_one_count_for_every_task_and_one_per_named_task():
    assert rescore.samples_of(["512", "points=256"]) == {"*": 512, "points": 256}
    for bad in (["1"], ["points=x"], ["tones=0"]):
        with pytest.raises(ValueError, match="N >= 2"):
            rescore.samples_of(bad)


def test_the_recipe_scores_more_items_of_a_larger_held_out_split(tmp_path):
    composed = tmp_path / "composed"
    composed.mkdir()
    OmegaConf.save(mt.load(RECIPE), composed / "config.yaml")
    cfg = rescore.rescored_recipe(
        composed,
        {"*": 512, "points": 256},
        ["points:data.val_params.emd=false", "tones:sampling.solver.name=tsit5"],
        tmp_path / "out",
    )
    by_name = {str(t.name): t for t in cfg.tasks}
    assert [int(by_name[n].eval.num_samples) for n in ("shapes", "tones", "points")] == [512, 512, 256]
    assert by_name["shapes"].data.val_params.length == 512 and by_name["tones"].data.val_params.size == 512
    assert (
        by_name["points"].data.val_params.num_items == 256 and by_name["points"].data.val_params.emd is False
    )
    assert by_name["tones"].sampling.solver.name == "tsit5"  # a plain string, as an override reads it
    assert cfg.run.output_dir == str(tmp_path / "out")
    # an alone run has one task: a setting for another task does not apply to it
    alone = tmp_path / "alone_shapes_10"
    alone.mkdir()
    one = mt.single_task_recipe(mt.load(RECIPE), "shapes", 10, 384, alone)
    OmegaConf.save(one, alone / "config.yaml")
    cfg = rescore.rescored_recipe(alone, {"*": 64}, ["points:data.val_params.emd=false"], tmp_path / "o2")
    assert [str(t.name) for t in cfg.tasks] == ["shapes"] and int(cfg.tasks[0].eval.num_samples) == 64
    # a held-out split whose size key it does not know: says which key to set
    cfg = OmegaConf.load(alone / "config.yaml")
    cfg.tasks[0].data.val_params = {"other": 3}
    OmegaConf.save(cfg, alone / "config.yaml")
    with pytest.raises(ValueError, match="--set shapes:data.val_params.<key>=64"):
        rescore.rescored_recipe(alone, {"*": 64}, [], tmp_path / "o3")


def test_item_verdicts_follow_item_order_once_per_item(tmp_path):
    files = [
        {"file": "00001_b.png", "verdict": {"adherence": 0.0}},
        {"file": "00000_a.png", "verdict": {"adherence": 1.0}},
        {"file": "00000_a_000.png", "verdict": {"adherence": 1.0}},  # a second file of item 0
        {"file": "00002_c.png"},  # no verdict
        {"file": "00002_c_000.png", "verdict": {"adherence": 1.0}},
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"files": files}))
    assert rescore.item_verdicts(tmp_path, "adherence") == [1.0, 0.0, 1.0]
    assert rescore.item_verdicts(tmp_path, "missing") is None
    assert rescore.item_verdicts(tmp_path / "nowhere", "adherence") is None


def synthetic() -> dict:
    a = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # composed
    b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # alone
    return {
        "composed_x": {
            "metrics": {"shapes/adherence": 4 / 6, "shapes/fid": 30.0, "tones/adherence": 0.5},
            "task_steps": {"shapes": 10, "tones": 7},
            "verdicts": {"shapes": a},
        },
        "alone_shapes_10": {
            "metrics": {"shapes/adherence": 4 / 6, "shapes/fid": 20.0},
            "task_steps": {"shapes": 10},
            "verdicts": {"shapes": b},
        },
        "alone_shapes_11": {
            "metrics": {"shapes/adherence": 0.1},
            "task_steps": {"shapes": 11},
            "verdicts": {},
        },
    }


def test_composed_runs_pair_with_the_alone_run_of_as_many_steps_item_by_item():
    results = synthetic()
    rows = rescore.comparisons(results)
    assert [(r["composed"], r["alone"], r["task"]) for r in rows] == [
        ("composed_x", "alone_shapes_10", "shapes")
    ]
    (row,) = rows
    diffs = [0.0, 1.0, 0.0, 0.0, -1.0, 0.0]
    mean = sum(diffs) / 6
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5)
    assert row["paired_diff"] == pytest.approx(mean) and row["paired_se"] == pytest.approx(sd / math.sqrt(6))
    assert (row["composed_better"], row["alone_better"], row["n"]) == (1, 1, 6)
    assert row["composed_dist"] == 30.0 and row["alone_dist"] == 20.0
    text = rescore.table(rows)
    assert "| composed_x | shapes adherence (10) | 6 |" in text and "(1.00x)" in text and "1 / 1" in text
    # any two runs, on the tasks both have
    pair = rescore.comparisons(results, [("alone_shapes_11", "composed_x")])
    assert [(r["composed"], r["alone"], r["task"], "paired_diff" in r) for r in pair] == [
        ("alone_shapes_11", "composed_x", "shapes", False)
    ]
    # a pair's columns name run and partner, not composed and alone
    header = rescore.table(pair, "run", "partner").splitlines()[0]
    assert "headline run / partner" in header and "composed" not in header
    assert "headline composed / alone" in text.splitlines()[0]


def test_alone_runs_come_from_an_earlier_json_of_the_same_items():
    results = synthetic()
    composed = {"composed_x": results["composed_x"]}
    saved = {"samples": {"*": 6}, "runs": {k: v for k, v in results.items() if k.startswith("alone_")}}
    merged = rescore.with_alone_runs(composed, saved, {"*": 6})
    assert rescore.comparisons(merged) == rescore.comparisons(results)  # the same rows as scoring them here
    saved["runs"]["composed_y"] = results["composed_x"]  # only alone runs are taken from the file
    assert "composed_y" not in rescore.with_alone_runs(composed, saved, {"*": 6})
    del saved["runs"]["alone_shapes_10"]["verdicts"]  # a file written before verdicts were kept: no pairing
    (row,) = rescore.comparisons(rescore.with_alone_runs(composed, saved, {"*": 6}))
    assert row["alone_score"] == results["alone_shapes_10"]["metrics"]["shapes/adherence"] and "paired_diff" not in row
    with pytest.raises(ValueError, match=r"scored on \{'\*': 6\} items per task, not on \{'\*': 512\}"):
        rescore.with_alone_runs(composed, saved, {"*": 512})


def test_alone_scores_from_another_or_an_unnamed_cpu_are_named():
    here = rescore.mt.cpu_model()
    assert rescore.machine_note("f.json", {"machine": {"cpu_model": here}}) is None
    assert "a CPU the file does not name" in rescore.machine_note("f.json", {"machine": {"cpus": 2}})
    other = rescore.machine_note("f.json", {"machine": {"cpu_model": "Some Other CPU"}})
    assert "Some Other CPU" in other and here in other

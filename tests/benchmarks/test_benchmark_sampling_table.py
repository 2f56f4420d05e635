"""benchmarks/sampling_table.py, the table sampling_images.py and sampling_media.py share: which cells a sweep
fills, the markdown it prints, the figure it draws."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sampling_images  # noqa: E402
import sampling_media  # noqa: E402
from sampling_table import GRIDS, plot_error_vs_nfe, print_table, sweep  # noqa: E402


def test_sweep_fills_the_cells_a_solver_meets_exactly():
    calls = []

    def cell(name, label, grid, steps, nfe):
        calls.append((name, label, steps, nfe))
        assert grid is GRIDS[label]
        return {"rms": 1.0 / nfe}

    saved = []
    table = sweep(["euler", "midpoint", "rk4"], [4, 6], cell, after_solver=lambda t: saved.append(list(t)))
    assert list(table) == [f"{s} | {g}" for s in ("euler", "midpoint", "rk4") for g in GRIDS]
    assert table["euler | uniform"] == {4: {"rms": 0.25}, 6: {"rms": 1 / 6}}
    assert table["rk4 | uniform"] == {4: {"rms": 0.25}}  # 4 evaluations per step: 6 NFE cannot be met
    assert ("midpoint", "uniform", 3, 6) in calls and ("rk4", "shift(2)", 1, 4) in calls
    assert [len(s) for s in saved] == [4, 8, 12]  # saved after each solver


def test_print_table_and_plot(capsys, tmp_path):
    table = {"euler | uniform": {4: {"rms": 0.5}, 8: {"rms": 0.25}}, "rk4 | uniform": {4: {"rms": 0.125}}}
    print_table(table, [4, 8], lambda c: f"{c['rms']:.3f}")
    assert capsys.readouterr().out.splitlines() == [
        "| solver | grid | 4 | 8 |",
        "|---|---|---|---|",
        "| euler | uniform | 0.500 | 0.250 |",
        "| rk4 | uniform | 0.125 |  |",
    ]
    png, svg = plot_error_vs_nfe(table, "t", "title", "RMS error", "a note", out_dir=str(tmp_path))
    assert Path(png).stat().st_size > 0 and Path(svg).is_file()


def test_both_benchmarks_keep_their_table_names():
    assert sampling_images.SOLVERS == sampling_media.SOLVERS and sampling_images.NFES == sampling_media.NFES
    assert sampling_media.grid_label({"name": "sigmoid", "params": {"k": 4}}) == "sigmoid(4)"

"""The solver x time grid x NFE table that ``sampling_images.py`` and ``sampling_media.py`` fill for a trained
model: the cells, the sweep over them, the markdown table and the error-vs-NFE figure.

    from sampling_table import GRIDS, NFES, SOLVERS, print_table, sweep   # benchmarks/ is on sys.path

A benchmark gives :func:`sweep` a function that samples one cell (solver name, grid label, grid node, solver
steps, NFE) and returns its numbers (``rms`` to the reference, checker scores); a solver's steps for an NFE
budget come from ``solver.steps_for_nfe`` and budgets it cannot meet exactly are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

SOLVERS = ("euler", "midpoint", "heun", "rk4", "ab2")
GRIDS = {
    "uniform": {"name": "uniform"},
    "shift(0.5)": {"name": "shift", "params": {"s": 0.5}},
    "shift(2)": {"name": "shift", "params": {"s": 2.0}},
    "sigmoid(4)": {"name": "sigmoid", "params": {"k": 4.0}},
}
NFES = (4, 6, 8, 10, 16, 20, 32)

#: ``{"solver | grid": {nfe: {"rms": ..., <scores>}}}``
Table = dict[str, dict[int, dict[str, float]]]


def grid_label(grid: dict) -> str | None:
    """The GRIDS label of a recipe's grid node, or None when the table has no such grid."""
    for label, g in GRIDS.items():
        if g["name"] == grid.get("name") and {k: float(v) for k, v in (g.get("params") or {}).items()} == {
            k: float(v) for k, v in (grid.get("params") or {}).items()
        }:
            return label
    return None


def cheapest_within(table: Table, limit: float) -> tuple[int, float, str] | None:
    """``(nfe, rms, "solver | grid")`` of the fewest-NFE cell with rms <= ``limit`` (ties: lower rms)."""
    ok = [
        (nfe, row[nfe]["rms"], key) for key, row in table.items() for nfe in row if row[nfe]["rms"] <= limit
    ]
    return min(ok) if ok else None


def sweep(
    solvers: Sequence[str],
    nfes: Sequence[int],
    cell: Callable[[str, str, dict, int, int], dict[str, float]],
    after_solver: Callable[[Table], None] | None = None,
) -> Table:
    """Every (solver, grid, NFE) cell: ``cell(solver, grid label, grid node, steps, nfe)`` for each budget the
    solver meets exactly, grids in :data:`GRIDS` order; ``after_solver(table so far)`` after each solver (to
    save partial results of a long run)."""
    from lumina_core.sampling import build_solver

    table: Table = {}
    for name in solvers:
        solver = build_solver(name)
        for label, grid in GRIDS.items():
            row = {}
            for nfe in nfes:
                steps = solver.steps_for_nfe(nfe)
                if steps is not None:
                    row[nfe] = cell(name, label, grid, steps, nfe)
            table[f"{name} | {label}"] = row
        if after_solver is not None:
            after_solver(table)
    return table


def print_table(table: Table, nfes: Sequence[int], cell_text: Callable[[dict[str, float]], str]) -> None:
    """The table in markdown: a row per solver and grid, a column per NFE (empty where the solver cannot)."""
    print("| solver | grid | " + " | ".join(str(n) for n in nfes) + " |")
    print("|---|---|" + "---|" * len(nfes))
    for key, row in table.items():
        print(f"| {key} | " + " | ".join(cell_text(row[n]) if n in row else "" for n in nfes) + " |")


def plot_error_vs_nfe(
    table: Table, stem: str, title: str, ylabel: str, note: str, out_dir: str | None = None
) -> tuple[Any, Any]:
    """One panel per grid, one line per solver: RMS error against NFE on log axes (benchmarks/plotting.py;
    ``out_dir`` None: the figures docs/benchmarks.md shows). Returns the PNG and SVG paths."""
    from plotting import line_panels

    panels: dict[str, dict] = {}
    for key, row in table.items():
        solver, label = key.split(" | ")
        panels.setdefault(label, {})[solver] = (list(row), [row[n]["rms"] for n in row])
    return line_panels(
        panels,
        stem,
        title=title,
        xlabel="NFE",
        ylabel=ylabel,
        logx=True,
        logy=True,
        note=note,
        out_dir=out_dir,
    )

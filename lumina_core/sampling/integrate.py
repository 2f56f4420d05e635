"""Integrate a velocity field over a time grid with a registered solver, hooks, NFE count and progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lumina_core.registry import SOLVERS
from lumina_core.sampling.grids import time_grid
from lumina_core.sampling.solvers import Solver

#: ``hook(step, t) -> dict | None``: extra keyword arguments for the velocity function at this evaluation
#: (``step`` is the grid interval index; for ``dopri5`` it is the evaluation index; ``t`` a float).
StepHook = Callable[[int, float], "dict[str, Any] | None"]


class Solution(NamedTuple):
    """What :func:`integrate` returns (unpacks as ``x1, nfe``)."""

    x: Tensor  #: the state at the grid's last time
    nfe: int  #: velocity evaluations spent


def build_solver(solver: Any) -> Solver:
    """A solver instance from a name, a ``{name, params}`` node or an instance of :class:`Solver`."""
    if isinstance(solver, Solver):
        return solver
    if isinstance(solver, str) or hasattr(solver, "keys"):
        return SOLVERS.build(solver)
    raise ValueError(
        f"a solver is a registered name, a {{name: ..., params: {{...}}}} node or a Solver instance; got {solver!r}"
    )


def integrate(
    velocity_fn: Callable[..., Tensor],
    x0: Tensor,
    grid: Any,
    solver: Any = "midpoint",
    hooks: Sequence[StepHook] = (),
    progress: bool = False,
) -> Solution:
    """Solve ``dx/dt = velocity_fn(x, t)`` from ``grid[0]`` to ``grid[-1]`` starting at ``x0``.

    Args:
        velocity_fn: ``velocity_fn(x, t, **extra) -> v`` with ``t`` of shape (B,) (B = ``x.shape[0]``);
            ``extra`` holds whatever the hooks return (nothing when there are no hooks).
        x0: the start (noise), (B, ...).
        grid: a (N + 1,) tensor or list of increasing times (see :func:`time_grid`).
        solver: a registered solver name, ``{name, params}`` node or a solver instance.
        hooks: per-evaluation hooks ``hook(step, t) -> dict`` of extra keyword arguments (e.g.
            ``{"rope_scaling": ...}`` for time-aware RoPE); later hooks override earlier ones.
        progress: show a tqdm bar over the steps (or evaluations, for an adaptive solver).

    Returns:
        :class:`Solution` ``(x, nfe)``: the end point and the number of velocity evaluations.
    """
    grid = time_grid(grid)
    solver = build_solver(solver)
    t_dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    grid = grid.to(device=x0.device, dtype=t_dtype)
    b = x0.shape[0]
    state = {"nfe": 0, "step": 0}

    from tqdm.auto import tqdm

    bar = tqdm(
        total=None if solver.adaptive else grid.numel() - 1,
        desc=f"sampling ({solver.name or type(solver).__name__})",
        disable=not progress,
        leave=False,
    )

    def f(x: Tensor, t: Tensor) -> Tensor:
        extra: dict[str, Any] = {}
        step = state["nfe"] if solver.adaptive else state["step"]
        for hook in hooks:
            extra.update(hook(step, float(t)) or {})
        state["nfe"] += 1
        if solver.adaptive:
            bar.update(1)
        tb = t.to(device=x.device, dtype=t_dtype).reshape(()).expand(b)
        return velocity_fn(x, tb, **extra)

    def on_step(i: int) -> None:
        if i:
            bar.update(1)
        state["step"] = i

    try:
        x = solver.solve(f, x0, grid, on_step)
        if not solver.adaptive:
            bar.update(1)
    finally:
        bar.close()
    return Solution(x, state["nfe"])

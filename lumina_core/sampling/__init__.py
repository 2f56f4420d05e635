"""Sampling: time grids, ODE solvers, classifier-free guidance, per-step hooks and ``generate``.

Importing this package registers the solvers ``euler``, ``midpoint``, ``heun``, ``heun_edm`` (an alias of
``{name: heun, params: {final_euler: true}}``), ``rk4``, ``ab2``, ``dopri5`` in ``SOLVERS`` (base:
:class:`Solver`) and the grids ``uniform``, ``shift``, ``sigmoid``, ``token_shift``, ``explicit`` in ``TIME_GRIDS`` (base:
:class:`TimeGrid`). :func:`fit_time_grid` fits a model-specific grid (store it as an ``explicit`` grid).
:class:`SamplingSettings` is a recipe's ``sampling`` section built once (components, guidance, seed) and is
what :func:`generate` takes.
"""

from lumina_core.sampling.generate import generate, guided_velocity, token_noise
from lumina_core.sampling.grid_fit import explicit_node, fit_time_grid
from lumina_core.sampling.grids import TimeGrid, check_grid, time_grid
from lumina_core.sampling.guidance import cfg_combine, channel_mask
from lumina_core.sampling.integrate import Solution, build_solver, integrate
from lumina_core.sampling.settings import Guidance, SamplingSettings
from lumina_core.sampling.solvers import (
    RK4,
    AdamsBashforth2,
    Dopri5,
    Euler,
    FixedStepSolver,
    Heun,
    HeunEDM,
    Midpoint,
    Solver,
)

__all__ = [
    "RK4",
    "AdamsBashforth2",
    "Dopri5",
    "Euler",
    "FixedStepSolver",
    "Guidance",
    "Heun",
    "HeunEDM",
    "Midpoint",
    "SamplingSettings",
    "Solution",
    "Solver",
    "TimeGrid",
    "build_solver",
    "cfg_combine",
    "channel_mask",
    "check_grid",
    "explicit_node",
    "fit_time_grid",
    "generate",
    "guided_velocity",
    "integrate",
    "time_grid",
    "token_noise",
]

"""Sampling: time grids, ODE solvers, classifier-free guidance, per-step hooks and ``generate``.

Importing this package registers the solvers ``euler``, ``midpoint``, ``heun``, ``rk4``, ``dopri5`` in
``SOLVERS`` and the grids ``uniform``, ``shift``, ``sigmoid``, ``explicit`` in ``TIME_GRIDS``.
"""

from lumina_core.sampling.generate import generate, guided_velocity, token_noise
from lumina_core.sampling.grids import check_grid, time_grid
from lumina_core.sampling.guidance import cfg_combine, channel_mask
from lumina_core.sampling.integrate import build_solver, integrate
from lumina_core.sampling.solvers import RK4, Dopri5, Euler, FixedStepSolver, Heun, Midpoint

__all__ = [
    "RK4",
    "Dopri5",
    "Euler",
    "FixedStepSolver",
    "Heun",
    "Midpoint",
    "build_solver",
    "cfg_combine",
    "channel_mask",
    "check_grid",
    "generate",
    "guided_velocity",
    "integrate",
    "time_grid",
    "token_noise",
]

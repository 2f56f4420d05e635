"""ODE solvers for ``dx/dt = v(x, t)`` from t = 0 (noise) to t = 1 (data).

Fixed-grid solvers advance one grid interval ``[t0, t1]``, ``h = t1 - t0``, per ``step``:

* ``euler`` (order 1, 1 NFE): ``x + h v(x, t0)``
* ``midpoint`` (order 2, 2 NFE): ``x + h v(x + h/2 v(x, t0), t0 + h/2)``
* ``heun`` (order 2, 2 NFE, explicit trapezoid): ``k1 = v(x, t0)``, ``k2 = v(x + h k1, t1)``,
  ``x + h (k1 + k2) / 2``
* ``rk4`` (order 4, 4 NFE): the classical Runge-Kutta scheme.

``dopri5`` is adaptive (Dormand-Prince 5(4) from torchdiffeq, tolerances ``rtol``/``atol``): it ignores the
inner grid points and integrates from the grid's first to its last time.

``f(x, t)`` receives ``t`` as a 0-d tensor; :func:`lumina_core.sampling.integrate` broadcasts it per sample
and counts NFE.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lumina_core.registry import SOLVERS

StepFn = Callable[[Tensor, Tensor], Tensor]


class FixedStepSolver:
    """A one-step method on a given grid. Subclasses set ``order``, ``nfe_per_step`` and ``step``."""

    name: str = ""
    order: int = 0
    nfe_per_step: int = 0
    adaptive: bool = False

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@SOLVERS.register("euler")
class Euler(FixedStepSolver):
    name, order, nfe_per_step = "euler", 1, 1

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        return x + (t1 - t0) * f(x, t0)


@SOLVERS.register("midpoint")
class Midpoint(FixedStepSolver):
    name, order, nfe_per_step = "midpoint", 2, 2

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        x_mid = x + 0.5 * h * f(x, t0)
        return x + h * f(x_mid, t0 + 0.5 * h)


@SOLVERS.register("heun")
class Heun(FixedStepSolver):
    name, order, nfe_per_step = "heun", 2, 2

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        k1 = f(x, t0)
        k2 = f(x + h * k1, t1)
        return x + 0.5 * h * (k1 + k2)


@SOLVERS.register("rk4")
class RK4(FixedStepSolver):
    name, order, nfe_per_step = "rk4", 4, 4

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        k1 = f(x, t0)
        k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
        k4 = f(x + h * k3, t1)
        return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


@SOLVERS.register("dopri5")
class Dopri5:
    """Adaptive Dormand-Prince 5(4) via ``torchdiffeq.odeint``; NFE depends on ``rtol``/``atol``."""

    name, adaptive = "dopri5", True

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5, max_num_steps: int = 10_000) -> None:
        if rtol <= 0 or atol <= 0:
            raise ValueError(f"dopri5 needs positive tolerances; got rtol={rtol}, atol={atol}")
        self.rtol, self.atol, self.max_num_steps = float(rtol), float(atol), int(max_num_steps)

    def solve(self, f: StepFn, x0: Tensor, t_start: Tensor, t_end: Tensor) -> Tensor:
        from torchdiffeq import odeint

        ts = torch.stack([t_start, t_end]).to(
            device=x0.device, dtype=torch.float64 if x0.dtype == torch.float64 else torch.float32
        )
        out = odeint(
            lambda t, x: f(x, t),
            x0,
            ts,
            method="dopri5",
            rtol=self.rtol,
            atol=self.atol,
            options={"max_num_steps": self.max_num_steps},
        )
        return out[-1]

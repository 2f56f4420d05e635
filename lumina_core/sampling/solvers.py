"""ODE solvers for ``dx/dt = v(x, t)`` from t = 0 (noise) to t = 1 (data).

Fixed-grid solvers advance one grid interval ``[t0, t1]``, ``h = t1 - t0``, per ``step``:

* ``euler`` (order 1, 1 NFE): ``x + h v(x, t0)``
* ``midpoint`` (order 2, 2 NFE): ``x + h v(x + h/2 v(x, t0), t0 + h/2)``
* ``heun`` (order 2, 2 NFE, explicit trapezoid): ``k1 = v(x, t0)``, ``k2 = v(x + h k1, t1)``,
  ``x + h (k1 + k2) / 2``
* ``rk4`` (order 4, 4 NFE): the classical Runge-Kutta scheme.
* ``ab2`` (order 2, 1 NFE): two-step Adams-Bashforth on a variable grid, reusing the previous velocity:
  ``x + h ((1 + r/2) v(x, t0) - (r/2) v_prev)`` with ``r = h / h_prev``; the first step is Euler. It is the
  multistep idea behind fast diffusion samplers such as DPM-Solver++(2M) (Lu et al. 2022), applied to the
  velocity ODE directly. Like midpoint it never evaluates the field at ``t = 1``.

Every solver subclasses :class:`Solver` (one method, :meth:`Solver.solve`, integrates over a whole grid) and
is named in recipes like every other component: ``solver: heun`` or ``solver: {name: heun, params:
{final_euler: true}}``.

``heun`` and ``rk4`` take ``final_euler`` (default False): the last grid interval is then a plain Euler step
(1 NFE) instead of the full scheme, as EDM (Karras et al. 2022) does for its last step, so that no
evaluation lands exactly at ``t = 1`` (on the benchmark model this helps Heun only at the lowest NFE, see
docs/benchmarks.md). A final Euler step keeps Heun's global order 2 (its local error there is
O(h^2)), drops RK4 to order 2, and saves ``nfe_per_step - 1`` evaluations: ``N`` steps cost
``nfe_per_step (N - 1) + 1`` (:meth:`FixedStepSolver.nfe`).
``heun_edm`` is an alias kept for recipes written before solvers took params: the registered name of
``{name: heun, params: {final_euler: true}}``.

``dopri5`` is adaptive (Dormand-Prince 5(4) from torchdiffeq, tolerances ``rtol``/``atol``): it ignores the
inner grid points and integrates from the grid's first to its last time.

``f(x, t)`` receives ``t`` as a 0-d tensor; :func:`lumina_core.sampling.integrate` broadcasts it per sample
and counts NFE.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from lumina_core.registry import SOLVERS, with_defaults

StepFn = Callable[[Tensor, Tensor], Tensor]
#: ``on_step(i)``: called as the solver starts grid interval ``i`` (fixed-grid solvers only)
StepCallback = Callable[[int], None]


class Solver(abc.ABC):
    """Base class of ODE solvers for ``dx/dt = f(x, t)``: registered in ``SOLVERS``, built from
    ``{name, params}`` (constructor keywords = params)."""

    name: ClassVar[str] = ""
    #: True when the solver chooses its own steps (it then ignores the grid's inner points)
    adaptive: ClassVar[bool] = False

    @abc.abstractmethod
    def solve(self, f: StepFn, x0: Tensor, grid: Tensor, on_step: StepCallback | None = None) -> Tensor:
        """The state at ``grid[-1]`` starting from ``x0`` at ``grid[0]``; ``f(x, t)`` gets ``t`` as a 0-d
        tensor. ``on_step(i)`` is called as interval ``i`` starts (adaptive solvers never call it)."""


class FixedStepSolver(Solver):
    """A one-step method on a given grid. Subclasses set ``order``, ``nfe_per_step`` and ``step``."""

    order: ClassVar[int] = 0
    nfe_per_step: ClassVar[int] = 0

    final_euler: bool = False

    def start(self) -> None:
        """Called before the first step of each solve (multistep solvers forget their history)."""

    def solve(self, f: StepFn, x0: Tensor, grid: Tensor, on_step: StepCallback | None = None) -> Tensor:
        """``step`` over every grid interval, :meth:`final_step` over the last one."""
        self.start()
        x = x0
        last = grid.numel() - 2
        for i in range(last + 1):
            if on_step is not None:
                on_step(i)
            step = self.final_step if i == last else self.step
            x = step(f, x, grid[i], grid[i + 1])
        return x

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        """The step over the grid's last interval: a plain Euler step with ``final_euler``, else ``step``."""
        if self.final_euler:
            return x + (t1 - t0) * f(x, t0)
        return self.step(f, x, t0, t1)

    def nfe(self, steps: int) -> int:
        """Velocity evaluations for ``steps`` grid intervals."""
        if int(steps) != steps or steps < 1:
            raise ValueError(f"a solver needs a positive whole number of steps; got {steps!r}")
        if self.final_euler:
            return self.nfe_per_step * (int(steps) - 1) + 1
        return self.nfe_per_step * int(steps)

    def steps_for_nfe(self, nfe: int) -> int | None:
        """The number of grid steps that costs exactly ``nfe`` evaluations, or None if none does."""
        per = self.nfe_per_step
        n = (nfe - 1) // per + 1 if self.final_euler else nfe // per
        return n if n >= 1 and self.nfe(n) == nfe else None


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} needs final_euler to be true or false; got {value!r}")
    return value


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

    def __init__(self, final_euler: bool = False) -> None:
        self.final_euler = _check_flag("heun", final_euler)

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        k1 = f(x, t0)
        k2 = f(x + h * k1, t1)
        return x + 0.5 * h * (k1 + k2)


@SOLVERS.register("heun_edm")
class HeunEDM(Heun):
    """Heun with a final Euler step (EDM's sampler without churn): an alias of
    ``{name: heun, params: {final_euler: true}}`` kept for recipes that name it."""

    name = "heun_edm"
    __init__ = with_defaults(Heun.__init__, final_euler=True)


@SOLVERS.register("rk4")
class RK4(FixedStepSolver):
    name, order, nfe_per_step = "rk4", 4, 4

    def __init__(self, final_euler: bool = False) -> None:
        self.final_euler = _check_flag("rk4", final_euler)

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        k1 = f(x, t0)
        k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
        k4 = f(x + h * k3, t1)
        return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


@SOLVERS.register("ab2")
class AdamsBashforth2(FixedStepSolver):
    """Variable-step two-step Adams-Bashforth (order 2, 1 NFE per step); Euler for the first step.

    On ``[t0, t1]`` with ``h = t1 - t0`` after a step of length ``h_prev`` that evaluated ``v_prev``:
    ``x1 = x + h ((1 + r/2) v(x, t0) - (r/2) v_prev)``, ``r = h / h_prev`` (the linear extrapolation of the
    velocity through its last two values, integrated over the step). The instance keeps the last velocity,
    so :meth:`start` must be called before each new solve (:func:`integrate` does).
    """

    name, order, nfe_per_step = "ab2", 2, 1

    def __init__(self) -> None:
        self._prev: tuple[Tensor, Tensor] | None = None

    def start(self) -> None:
        self._prev = None

    def step(self, f: StepFn, x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        h = t1 - t0
        v = f(x, t0)
        if self._prev is None:
            out = x + h * v
        else:
            v_prev, h_prev = self._prev
            r = h / h_prev
            out = x + h * ((1.0 + 0.5 * r) * v - 0.5 * r * v_prev)
        self._prev = (v, h)
        return out


@SOLVERS.register("dopri5")
class Dopri5(Solver):
    """Adaptive Dormand-Prince 5(4) via ``torchdiffeq.odeint``; NFE depends on ``rtol``/``atol``."""

    name, adaptive = "dopri5", True

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5, max_num_steps: int = 10_000) -> None:
        if rtol <= 0 or atol <= 0:
            raise ValueError(f"dopri5 needs positive tolerances; got rtol={rtol}, atol={atol}")
        self.rtol, self.atol, self.max_num_steps = float(rtol), float(atol), int(max_num_steps)

    def solve(self, f: StepFn, x0: Tensor, grid: Tensor, on_step: StepCallback | None = None) -> Tensor:
        """From ``grid[0]`` to ``grid[-1]`` (the inner grid points are ignored)."""
        from torchdiffeq import odeint

        ts = torch.stack([grid[0], grid[-1]]).to(
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

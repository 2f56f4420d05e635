"""Fit a time grid for a given solver and step count to a model's velocity field ("Align Your Steps" style).

For ``N`` steps the grid is parameterised by ``N`` logits ``z``: the increments are ``h = softmax(z)``, so
``t_0 = 0``, ``t_i = h_1 + ... + h_i`` and ``t_N = 1``; every ``z`` gives a valid, strictly increasing grid.
On a calibration set of noise ``x0`` (a few seeded draws) the fit minimises the mean squared difference
between the solver's end point on that grid and a reference end point (by default a tight dopri5 solution),

    L(z) = mean over samples and values of (solve(v, x0, t(z), solver) - x1_ref)^2,

by Adam on ``z`` with gradients taken through the solver and the velocity function (which must be
differentiable in ``x`` and ``t``, as a network is). It starts from an ordinary grid (``init``) and returns
the best grid seen, so the result is never worse than ``init`` on the calibration set. Like Sabour et al.
(2024), the result is specific to a model (and step count and solver); check it on noise that was *not*
used to fit. Store it as ``{"name": "explicit", "params": {"values": [...]}}`` (see :func:`explicit_node`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lumina_core.sampling.grids import time_grid
from lumina_core.sampling.integrate import build_solver, integrate

#: the reference used when ``reference_fn`` is not given: dopri5 at rtol = atol = 1e-7
DEFAULT_REFERENCE = {"name": "dopri5", "params": {"rtol": 1e-7, "atol": 1e-7}}


def grid_from_logits(z: Tensor) -> Tensor:
    """``[0, cumsum(softmax(z))]`` with the last time set to exactly 1: a (N + 1,) grid from N logits."""
    t = torch.cat([z.new_zeros(1), torch.cumsum(torch.softmax(z, dim=0), dim=0)])
    return torch.cat([t[:-1], t.new_ones(1)])


def logits_from_grid(t: Tensor) -> Tensor:
    """The logits ``log(t_i - t_{i-1})`` whose :func:`grid_from_logits` is ``t`` (which must span [0, 1])."""
    return torch.log(torch.diff(t.to(torch.float64)))


def fit_time_grid(
    velocity_fn: Callable[..., Tensor],
    x0_calibration: Tensor,
    steps: int,
    solver: Any = "midpoint",
    reference_fn: Callable[[Tensor], Tensor] | None = None,
    init: Any = "uniform",
    iters: int = 100,
    lr: float = 0.05,
    return_history: bool = False,
) -> list[float] | tuple[list[float], list[float]]:
    """Fit an ``steps``-step time grid for ``solver`` that brings its end points close to a reference.

    Args:
        velocity_fn: ``velocity_fn(x, t) -> v`` as for :func:`integrate` (``t`` of shape (B,)); must be
            differentiable in ``x`` and ``t``.
        x0_calibration: calibration noise (B, ...); use other noise to judge the fitted grid.
        steps: the number of grid intervals N (the grid has N + 1 times).
        solver: a fixed-grid solver (name, ``{name, params}`` node or instance).
        reference_fn: ``x0 -> x1`` reference end points; default dopri5 at rtol = atol = 1e-7.
        init: the starting grid (a grid spec for :func:`time_grid` with ``steps`` steps).
        iters: Adam iterations (each one solve plus its backward pass).
        lr: Adam learning rate on the logits.
        return_history: also return the calibration loss (mean squared error) at every iteration.

    Returns:
        The fitted grid as a list of N + 1 floats from 0 to 1 (and the loss history if asked).
    """
    solver = build_solver(solver)
    if getattr(solver, "adaptive", False):
        raise ValueError(f"fit_time_grid needs a fixed-grid solver; got the adaptive {solver.name!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"fit_time_grid needs a positive whole number of steps; got {steps!r}")
    if iters < 0 or lr <= 0:
        raise ValueError(f"fit_time_grid needs iters >= 0 and lr > 0; got iters={iters}, lr={lr}")
    t_init = time_grid(init, int(steps))
    if t_init.numel() != int(steps) + 1 or float(t_init[0]) != 0.0 or float(t_init[-1]) != 1.0:
        raise ValueError(f"init must be a {steps}-step grid from 0 to 1; got {t_init.tolist()}")

    x0 = x0_calibration.detach()
    with torch.no_grad():
        if reference_fn is None:
            ref, _ = integrate(velocity_fn, x0, [0.0, 1.0], DEFAULT_REFERENCE)
        else:
            ref = reference_fn(x0)
    ref = ref.detach()
    if ref.shape != x0.shape:
        raise ValueError(
            f"reference_fn must return the shape of x0 {tuple(x0.shape)}; got {tuple(ref.shape)}"
        )

    z = logits_from_grid(t_init).to(x0.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_loss, best_t, history = float("inf"), t_init.clone(), []
    with torch.enable_grad():
        for it in range(int(iters) + 1):
            t = grid_from_logits(z)
            x1, _ = integrate(velocity_fn, x0, t, solver)
            loss = (x1.to(ref.dtype) - ref).pow(2).mean()
            value = float(loss.detach())
            history.append(value)
            if value < best_loss:
                best_loss, best_t = value, t.detach().clone()
            if it == int(iters):
                break
            (grad,) = torch.autograd.grad(loss, [z])
            z.grad = grad
            opt.step()
    out = best_t.to(torch.float64).cpu().tolist()
    out[0], out[-1] = 0.0, 1.0
    return (out, history) if return_history else out


def explicit_node(values: list[float]) -> dict:
    """The recipe node ``{"name": "explicit", "params": {"values": [...]}}`` for a fitted grid."""
    return {"name": "explicit", "params": {"values": [float(v) for v in values]}}

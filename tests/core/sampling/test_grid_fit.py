"""fit_time_grid: a grid fitted on calibration noise must beat uniform on held-out noise (analytic fields)."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.sampling import explicit_node, fit_time_grid, integrate, time_grid
from lumina_core.sampling.grid_fit import grid_from_logits, logits_from_grid

T_END = 1.08  # the field below is stiff near t = 1 (its time scale shrinks to T_END - 1)


def stiff_field(x, t):
    """v = -1.5 x / (T - t) + 0.3 sin(2 x): contracts sharply as t -> 1, nonlinear in x."""
    return -1.5 * x / (T_END - t)[:, None] + 0.3 * torch.sin(2 * x)


def linear_exact(x0):
    """The closed-form end point of v = -1.5 x / (T - t): x(1) = x0 ((T - 1) / T)^1.5."""
    return x0 * ((T_END - 1) / T_END) ** 1.5


def rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def test_logits_round_trip_and_valid_grids():
    t = time_grid({"name": "shift", "params": {"s": 0.5}}, 6)
    torch.testing.assert_close(grid_from_logits(logits_from_grid(t)), t)
    g = grid_from_logits(torch.tensor([3.0, -2.0, 0.0, 10.0], dtype=torch.float64))
    assert g[0].item() == 0.0 and g[-1].item() == 1.0 and bool((g.diff() > 0).all())
    # softmax is shift-invariant: adding a constant to every logit gives the same grid
    torch.testing.assert_close(
        grid_from_logits(torch.zeros(5, dtype=torch.float64) + 7.0), time_grid("uniform", 5)
    )


@pytest.mark.parametrize("solver,steps", [("midpoint", 4), ("ab2", 6), ("euler", 6)])
def test_fitted_grid_beats_uniform_on_held_out_noise(solver, steps):
    g = torch.Generator().manual_seed(0)
    x_cal = 2 * torch.randn(32, 3, generator=g, dtype=torch.float64)
    x_test = 2 * torch.randn(64, 3, generator=g, dtype=torch.float64)  # never seen by the fit
    fitted, history = fit_time_grid(
        stiff_field, x_cal, steps, solver, init="uniform", iters=60, lr=0.1, return_history=True
    )
    assert len(fitted) == steps + 1 and fitted[0] == 0.0 and fitted[-1] == 1.0
    assert all(b > a for a, b in zip(fitted[:-1], fitted[1:], strict=True))
    assert min(history) < history[0]  # history[0] is the uniform init on the calibration noise
    ref, _ = integrate(
        stiff_field, x_test, [0.0, 1.0], {"name": "dopri5", "params": {"rtol": 1e-10, "atol": 1e-10}}
    )
    uni, _ = integrate(stiff_field, x_test, time_grid("uniform", steps), solver)
    fit, nfe = integrate(stiff_field, x_test, time_grid(explicit_node(fitted)), solver)
    assert nfe == steps * (2 if solver == "midpoint" else 1)
    # measured: midpoint 0.44, ab2 0.15, euler 0.49 of the uniform grid's error
    assert rms(fit, ref) < 0.7 * rms(uni, ref), (rms(fit, ref), rms(uni, ref), fitted)
    # the stiff end wants short steps: the last interval is shorter than the first
    assert fitted[-1] - fitted[-2] < fitted[1] - fitted[0]


def test_closed_form_reference_fn_and_init_is_kept_when_optimal():
    # with a custom reference_fn (closed form of the linear part) the fit works the same way
    g = torch.Generator().manual_seed(1)
    x_cal = torch.randn(16, 2, generator=g, dtype=torch.float64)
    field = lambda x, t: -1.5 * x / (T_END - t)[:, None]  # noqa: E731
    fitted, history = fit_time_grid(
        field, x_cal, 5, "midpoint", reference_fn=linear_exact, iters=40, return_history=True
    )
    assert math.sqrt(min(history)) < 0.5 * math.sqrt(history[0])
    # iters=0 returns the init grid unchanged (the best seen is the only one seen)
    init = {"name": "sigmoid", "params": {"k": 3}}
    same = fit_time_grid(field, x_cal, 5, "midpoint", reference_fn=linear_exact, init=init, iters=0)
    assert same == pytest.approx(time_grid(init, 5).tolist(), abs=1e-15)


def test_fit_time_grid_input_errors():
    x = torch.zeros(2, 1, dtype=torch.float64)
    f = lambda x, t: -x  # noqa: E731
    with pytest.raises(ValueError, match="fixed-grid solver"):
        fit_time_grid(f, x, 4, "dopri5")
    with pytest.raises(ValueError, match="whole number of steps"):
        fit_time_grid(f, x, 0)
    with pytest.raises(ValueError, match="shape of x0"):
        fit_time_grid(f, x, 3, reference_fn=lambda x0: x0[:1])

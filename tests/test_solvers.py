"""Known-answer tests of the ODE solvers, time grids and integrate()."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.registry import SOLVERS, TIME_GRIDS
from lumina_core.sampling import integrate, time_grid

FIXED = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def linear_field(a: torch.Tensor):
    """v(x, t) = x A^T for x (B, n): exact flow x(1) = x0 expm(A)^T."""
    return lambda x, t: x @ a.T


def smooth_field(x, t):
    """v = x cos(2 t) + sin(3 t): x(1) = e^{s(1)} (x0 + int_0^1 e^{-s(u)} sin(3u) du), s(t) = sin(2t)/2."""
    return x * torch.cos(2 * t)[:, None] + torch.sin(3 * t)[:, None]


def smooth_exact(x0: torch.Tensor) -> torch.Tensor:
    # the integral by composite Simpson on a fine grid (error ~1e-16 at 20001 points)
    u = torch.linspace(0, 1, 20001, dtype=torch.float64)
    f = torch.exp(-torch.sin(2 * u) / 2) * torch.sin(3 * u)
    h = 1 / 20000
    integral = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return math.exp(math.sin(2) / 2) * (x0 + integral)


def test_all_names_registered():
    assert {"euler", "midpoint", "heun", "rk4", "dopri5"} <= set(SOLVERS.names())
    assert {"uniform", "shift", "sigmoid", "explicit"} <= set(TIME_GRIDS.names())


@pytest.mark.parametrize("solver", [*FIXED, "dopri5"])
def test_constant_velocity_is_exact_on_any_grid(solver):
    x0 = torch.randn(3, 5, dtype=torch.float64)
    c = torch.randn(3, 5, dtype=torch.float64)
    x1, _ = integrate(lambda x, t: c, x0, time_grid({"name": "shift", "params": {"s": 4}}, 3), solver)
    torch.testing.assert_close(x1, x0 + c, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "solver,steps,tol", [("rk4", 40, 1e-6), ("midpoint", 400, 1e-5), ("dopri5", 1, 1e-7)]
)
def test_linear_field_matches_matrix_exponential(solver, steps, tol):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    x0 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    exact = x0 @ torch.linalg.matrix_exp(a).T
    spec = {"name": "dopri5", "params": {"rtol": 1e-10, "atol": 1e-10}} if solver == "dopri5" else solver
    x1, nfe = integrate(linear_field(a), x0, time_grid("uniform", steps), spec)
    assert (x1 - exact).abs().max().item() < tol * exact.abs().max().item()
    assert nfe > 0


@pytest.mark.parametrize(
    "grid", ["uniform", {"name": "shift", "params": {"s": 3}}, {"name": "sigmoid", "params": {"k": 3}}]
)
@pytest.mark.parametrize("solver,order", list(FIXED.items()))
def test_measured_convergence_order(solver, order, grid):
    x0 = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    exact = smooth_exact(x0)
    errors = []
    for n in (8, 16, 32, 64):
        x1, _ = integrate(smooth_field, x0, time_grid(grid, n), solver)
        errors.append((x1 - exact).abs().max().item())
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)]
    assert abs(rates[-1] - order) < 0.25, f"{solver} on {grid}: errors {errors}, rates {rates}"


@pytest.mark.parametrize("solver,per_step", list(FIXED.items()))
def test_nfe_counts(solver, per_step):
    calls = []

    def f(x, t):
        calls.append(t.clone())
        assert t.shape == (2,)
        return -x

    _, nfe = integrate(f, torch.ones(2, 3), time_grid("uniform", 5), solver)
    assert nfe == 5 * per_step == len(calls)


def test_dopri5_counts_nfe_and_tightens_with_tolerance():
    x0 = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    exact = smooth_exact(x0)
    loose = integrate(
        smooth_field, x0, [0.0, 1.0], {"name": "dopri5", "params": {"rtol": 1e-3, "atol": 1e-3}}
    )
    tight = integrate(
        smooth_field, x0, [0.0, 1.0], {"name": "dopri5", "params": {"rtol": 1e-9, "atol": 1e-9}}
    )
    assert tight[1] > loose[1] > 0
    assert (tight[0] - exact).abs().max() < 1e-7
    assert (tight[0] - exact).abs().max() < (loose[0] - exact).abs().max()


def test_hooks_see_every_evaluation_and_pass_kwargs():
    seen = []

    def hook(step, t):
        seen.append((step, round(t, 6)))
        return {"scale": 2.0 if t < 0.5 else 1.0}

    def f(x, t, scale=None):
        assert scale in (1.0, 2.0)
        return torch.zeros_like(x)

    integrate(f, torch.zeros(1, 1), [0.0, 0.25, 1.0], "midpoint", hooks=[hook])
    assert seen == [(0, 0.0), (0, 0.125), (1, 0.25), (1, 0.625)]


def test_integrate_rejects_bad_grids():
    with pytest.raises(ValueError, match="increase"):
        integrate(lambda x, t: x, torch.zeros(1, 1), [0.0, 0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        integrate(lambda x, t: x, torch.zeros(1, 1), [0.0, 1.5])
    with pytest.raises(KeyError, match="unknown solver"):
        integrate(lambda x, t: x, torch.zeros(1, 1), [0.0, 1.0], "leapfrog")


def test_grid_formulas():
    u = time_grid("uniform", 8)
    torch.testing.assert_close(u, torch.arange(9, dtype=torch.float64) / 8)
    s = time_grid({"name": "shift", "params": {"s": 4}}, 8)
    torch.testing.assert_close(s, u / (u + 4 - 4 * u))
    assert s[4].item() == pytest.approx(0.2)  # s = 4 puts half the steps below t = 0.2
    torch.testing.assert_close(time_grid({"name": "shift", "params": {"s": 1}}, 8), u)
    g = time_grid({"name": "sigmoid", "params": {"k": 6}}, 10)
    assert g[0].item() == 0 and g[-1].item() == 1
    torch.testing.assert_close(g + g.flip(0), torch.ones(11, dtype=torch.float64))  # symmetric
    d = g.diff()
    assert d[0] < d[5] and d[-1] < d[5]  # denser at both ends
    k = torch.tensor(6.0, dtype=torch.float64)
    lo, hi = torch.sigmoid(-k / 2), torch.sigmoid(k / 2)
    torch.testing.assert_close(g[3], (torch.sigmoid(k * (0.3 - 0.5)) - lo) / (hi - lo))
    e = time_grid({"name": "explicit", "params": {"values": [0.0, 0.1, 0.5, 1.0]}})
    assert e.tolist() == [0.0, 0.1, 0.5, 1.0]
    with pytest.raises(ValueError, match="3 steps"):
        time_grid({"name": "explicit", "params": {"values": [0.0, 0.1, 0.5, 1.0]}}, 5)

"""Known-answer tests of the ODE solvers, time grids and integrate()."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.registry import SOLVERS, TIME_GRIDS
from lumina_core.sampling import build_solver, integrate, time_grid

FIXED = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}  # name -> NFE per step (and the order)
#: every fixed-grid solver spec -> (order, NFE per step, final Euler step)
ORDERS = {
    "euler": (1, 1, False),
    "midpoint": (2, 2, False),
    "heun": (2, 2, False),
    "rk4": (4, 4, False),
    "ab2": (2, 1, False),
    "heun+final_euler": (2, 2, True),
    "heun_edm": (2, 2, True),
    "rk4+final_euler": (2, 4, True),  # a final Euler step caps RK4 at order 2
}


def spec(label: str):
    name, _, variant = label.partition("+")
    return {"name": name, "params": {"final_euler": True}} if variant == "final_euler" else name


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
    assert {"euler", "midpoint", "heun", "heun_edm", "rk4", "ab2", "dopri5"} <= set(SOLVERS.names())
    assert {"uniform", "shift", "sigmoid", "explicit"} <= set(TIME_GRIDS.names())


@pytest.mark.parametrize("solver", [*ORDERS, "dopri5"])
def test_constant_velocity_is_exact_on_any_grid(solver):
    x0 = torch.randn(3, 5, dtype=torch.float64)
    c = torch.randn(3, 5, dtype=torch.float64)
    grid = time_grid({"name": "shift", "params": {"s": 4}}, 3)
    x1, _ = integrate(lambda x, t: c, x0, grid, spec(solver) if solver != "dopri5" else solver)
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
@pytest.mark.parametrize("solver", list(ORDERS))
def test_measured_convergence_order(solver, grid):
    order = ORDERS[solver][0]
    x0 = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    exact = smooth_exact(x0)
    errors = []
    for n in (8, 16, 32, 64):
        x1, _ = integrate(smooth_field, x0, time_grid(grid, n), spec(solver))
        errors.append((x1 - exact).abs().max().item())
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)]
    assert abs(rates[-1] - order) < 0.25, f"{solver} on {grid}: errors {errors}, rates {rates}"


@pytest.mark.parametrize("solver", list(ORDERS))
def test_nfe_counts(solver):
    _, per_step, final_euler = ORDERS[solver]
    calls = []

    def f(x, t):
        calls.append(t.clone())
        assert t.shape == (2,)
        return -x

    _, nfe = integrate(f, torch.ones(2, 3), time_grid("uniform", 5), spec(solver))
    expected = 4 * per_step + 1 if final_euler else 5 * per_step
    assert nfe == expected == len(calls) == build_solver(spec(solver)).nfe(5)
    if final_euler:  # the last evaluation is the Euler one at the last interval's start, never t = 1
        assert calls[-1][0].item() == pytest.approx(0.8) and max(c[0].item() for c in calls) < 1


@pytest.mark.parametrize("solver", list(ORDERS))
def test_steps_for_nfe_inverts_nfe(solver):
    s = build_solver(spec(solver))
    for steps in range(1, 12):
        assert s.steps_for_nfe(s.nfe(steps)) == steps
    hits = [n for n in range(1, 30) if s.steps_for_nfe(n) is not None]
    assert hits == sorted({s.nfe(k) for k in range(1, 30)} & set(range(1, 30)))
    with pytest.raises(ValueError, match="whole number of steps"):
        s.nfe(0)


def test_final_euler_is_an_euler_step_on_the_last_interval():
    # v = t^2 (no x): heun's trapezoid is exact for t^1 only; with final_euler the last interval adds
    # h * t0^2 instead of h (t0^2 + t1^2) / 2
    grid = [0.0, 0.5, 1.0]
    f = lambda x, t: (t**2)[:, None].expand_as(x)  # noqa: E731
    x1, _ = integrate(f, torch.zeros(1, 1, dtype=torch.float64), grid, "heun")
    x1e, nfe = integrate(
        f, torch.zeros(1, 1, dtype=torch.float64), grid, {"name": "heun", "params": {"final_euler": True}}
    )
    assert x1.item() == pytest.approx(0.5 * (0 + 0.25) / 2 + 0.5 * (0.25 + 1) / 2)
    assert x1e.item() == pytest.approx(0.5 * (0 + 0.25) / 2 + 0.5 * 0.25) and nfe == 3
    with pytest.raises(ValueError, match="true or false"):
        build_solver({"name": "rk4", "params": {"final_euler": "yes"}})


def test_ab2_known_answer_and_fresh_history_per_solve():
    # v = a + b t: the two-step extrapolation of v is exact, so only the first (Euler) step errs, by
    # -b h0^2 / 2; on any grid x(1) = x0 + a + b/2 - b h0^2 / 2
    a, b = 0.7, -1.3
    f = lambda x, t: (a + b * t)[:, None].expand_as(x)  # noqa: E731
    grid = [0.0, 0.2, 0.35, 0.7, 0.9, 1.0]
    solver = build_solver("ab2")
    x0 = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    first, nfe = integrate(f, x0, grid, solver)
    torch.testing.assert_close(first, x0 + a + b / 2 - b * 0.2**2 / 2)
    assert nfe == 5
    again, _ = integrate(f, x0, grid, solver)  # the same instance must not reuse the last solve's velocity
    torch.testing.assert_close(again, first, rtol=0, atol=0)


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
    for sv in (0.3, 0.4, 0.45, 0.7):  # end points exact (u / (u + s - s u) at u = 1 can round past 1)
        sg = time_grid({"name": "shift", "params": {"s": sv}}, 10)
        assert sg[0].item() == 0.0 and sg[-1].item() == 1.0
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

"""The linear backends' choice between oneDNN and BLAS (lumina_core/model/linear_routes.py, ``_route``): ``"auto"``'s
fixed rule, ``"timed"``'s per-shape timing; and the no-autograd fast paths of the norms (values against the
plain composites)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lumina_core.model import linear as L
from lumina_core.model import linear_routes as R
from lumina_core.model.block import Block
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context import ForwardContext
from lumina_core.model.norm import RMSNorm, scaled_rms_norm
from lumina_core.model.unified import UnifiedBlock

onednn = pytest.mark.skipif(not R.uses_onednn(torch.zeros(1)), reason="no oneDNN in this PyTorch build")


@pytest.fixture
def fresh_routes():
    R.clear_linear_routes()
    yield
    R.clear_linear_routes()


def _swiglu_ref(x, w13, w2):
    w1, w3 = w13.chunk(2)
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


def _step(x, w13, w2):
    """Output and input gradients of one SwiGLU forward+backward through the trunk's kernels."""
    x, w13, w2 = (t.detach().clone().requires_grad_(True) for t in (x, w13, w2))
    out = L.swiglu(x, w13, w2)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
    return out.detach(), x.grad, w13.grad, w2.grad


@onednn
def test_timed_times_each_shape_once_and_caches_the_choice(fresh_routes, monkeypatch):
    calls = []
    real = R._fastest

    def counting(routes):
        calls.append(sorted(routes))
        return real(routes)

    monkeypatch.setattr(R, "_fastest", counting)
    x, w = torch.randn(3, 5, 16), torch.randn(24, 16)
    with R.linear_backend("timed"), torch.no_grad():
        first = L.linear(x, w)
        assert len(calls) == 1 and calls[0] == ["blas", "onednn"]
        key = ("x W^T", 15, 16, 24, torch.get_num_threads())
        assert R.linear_routes() == {key: R.linear_routes()[key]} and R.linear_routes()[key] in (
            "onednn",
            "blas",
        )
        for _ in range(3):  # the same shape again: no more timing, the same route, the same bits
            assert torch.equal(L.linear(x, w), first)
        assert len(calls) == 1
        L.linear(torch.randn(4, 16), w)  # another shape: timed once more
        assert len(calls) == 2
        L.linear(torch.randn(1100, 16), w)  # row counts share a choice within an eighth of an octave
        L.linear(torch.randn(1151, 16), w)
        assert len(calls) == 3 and ("x W^T", 1024, 16, 24, torch.get_num_threads()) in R.linear_routes()


def test_row_buckets():
    assert [R._row_bucket(m) for m in (1, 64, 65, 72, 1100, 1152, 1279, 1280)] == [
        1,
        64,
        64,
        72,
        1024,
        1152,
        1152,
        1280,
    ]


@onednn
@pytest.mark.parametrize("backend", ["auto", "blas", "onednn", "torch"])
def test_an_explicit_backend_wins_and_records_no_choice(fresh_routes, monkeypatch, backend):
    monkeypatch.setattr(R, "_fastest", lambda routes: pytest.fail("only 'timed' times routes"))
    x, w13, w2 = torch.randn(2, 7, 16), torch.randn(48, 16) / 4, torch.randn(16, 24) / 4
    with R.linear_backend(backend):
        out, *_ = _step(x, w13, w2)
        with torch.no_grad():
            L.swiglu(x, w13, w2)
    torch.testing.assert_close(out, _swiglu_ref(x, w13, w2), rtol=1e-5, atol=1e-5)
    assert R.linear_routes() == {}


def test_the_environment_sets_the_backend():
    code = (
        "import torch; from lumina_core.model import linear as L, linear_routes as R; "
        "L.linear(torch.randn(4, 8), torch.randn(3, 8)); print(R._backend, len(R.linear_routes()))"
    )
    for backend, routes in (("blas", "0"), ("onednn", "0")):
        run = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "LUMINA_LINEAR_BACKEND": backend},
            capture_output=True,
            text=True,
            check=True,
        )
        assert run.stdout.split() == [backend, routes]


@onednn
def test_both_routes_give_the_same_values_and_gradients(fresh_routes, monkeypatch):
    """Every product kind (forward, fused add, input gradient, no-grad SwiGLU) forced onto each route: the
    two routes agree to float rounding with each other and with the plain composite."""
    gen = torch.Generator().manual_seed(0)
    x, w13, w2 = (
        torch.randn(2, 9, 16, generator=gen),
        torch.randn(48, 16, generator=gen) / 4,
        torch.randn(16, 24, generator=gen) / 4,
    )
    qkv = torch.randn(28, 16, generator=gen) / 4
    results = {}
    for route in ("onednn", "blas"):
        monkeypatch.setattr(R, "_fastest", lambda routes, route=route: route)
        R.clear_linear_routes()
        with R.linear_backend("timed"):
            step = _step(x, w13, w2)
            xs, ws = x.clone().requires_grad_(True), qkv.clone().requires_grad_(True)
            outs = L.split_linear(xs, ws, (12, 8, 8))
            sum((o * (i + 1)).square().sum() for i, o in enumerate(outs)).backward()
            with torch.no_grad():
                nograd = L.swiglu(x, w13, w2)
        kinds = {k[0] for k in R.linear_routes()}
        assert kinds == {"x W^T", "g W", "o + g W", "silu(x W1^T) * x W3^T"}
        assert set(R.linear_routes().values()) == {route}
        results[route] = (*step, nograd, *outs, xs.grad, ws.grad)
    ref = _swiglu_ref(x, w13, w2)
    for a, b in zip(results["onednn"], results["blas"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results["blas"][0], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results["blas"][4], ref, rtol=1e-5, atol=1e-5)


def test_fastest_picks_the_faster_route():
    import time

    assert R._fastest({"slow": lambda: time.sleep(0.002), "fast": lambda: None}) == "fast"
    assert R._fastest({"fast": lambda: None, "slow": lambda: time.sleep(0.002)}) == "fast"


def test_norm_without_autograd_matches_the_composite_and_in_place_writes_its_input():
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 5, 8, generator=gen), torch.randn(2, 1, 8, generator=gen)
    ref = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6) * w
    with torch.no_grad():
        torch.testing.assert_close(scaled_rms_norm(x, w, 1e-6), ref)
        y = x.clone()
        out = scaled_rms_norm(y, w, 1e-6, inplace=True)
        assert out.data_ptr() == y.data_ptr()
        torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="no part in autograd"):
        scaled_rms_norm(x.clone().requires_grad_(True), w, 1e-6, inplace=True)
    norm = RMSNorm(8, eps=1e-6)
    z = x.clone().requires_grad_(True)
    out = norm(z, w, inplace=True)  # recording a graph: the flag is ignored, z untouched
    assert out.data_ptr() != z.data_ptr() and torch.equal(z.detach(), x)


def _unified_block() -> Block:
    torch.manual_seed(0)
    cfg = NextDiTConfig(dim=32, n_heads=4, n_kv_heads=2, n_layers=1, multiple_of=16, context_dim=None)
    block = UnifiedBlock(cfg)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return block


def test_block_without_autograd_equals_the_block_with_it_and_leaves_hooked_outputs_alone():
    """Sampling normalises the sublayer outputs in place; the result equals the training-mode forward, and a
    forward hook that keeps the attention's output sees it as it was produced."""
    block = _unified_block()
    x, c = torch.randn(2, 6, 32), torch.randn(2, block.adaLN_modulation[1].in_features)
    ctx = ForwardContext(None, None, None, None, c)
    want = block(x, ctx)
    with torch.no_grad():
        torch.testing.assert_close(block(x, ctx), want, rtol=1e-5, atol=1e-6)
        kept = []
        handle = block.attention.register_forward_hook(lambda m, i, o: kept.append((o, o.clone())))
        try:
            torch.testing.assert_close(block(x, ctx), want, rtol=1e-5, atol=1e-6)
        finally:
            handle.remove()
    assert torch.equal(kept[0][0], kept[0][1])


@onednn
@pytest.mark.parametrize("intel", [True, False])
def test_auto_is_a_fixed_rule_blas_on_intel_onednn_elsewhere(fresh_routes, monkeypatch, intel):
    """Every process on one machine takes the same kernels under the default (no timing): a resumed run or a
    second run of one seed is bit for bit the first."""
    monkeypatch.setattr(R, "intel_cpu", lambda: intel)
    taken = []
    real_blas = torch.addmm

    def spy(*a, **k):
        taken.append("blas")
        return real_blas(*a, **k)

    monkeypatch.setattr(torch, "addmm", spy)
    x, w, other = torch.randn(2, 5, 16), torch.randn(24, 16), torch.randn(2, 5, 24)
    with R.linear_backend("auto"), torch.no_grad():
        out = L._mm_add(x, other, w)
    assert taken == (["blas"] if intel else [])
    torch.testing.assert_close(out, other + x @ w.t(), rtol=1e-5, atol=1e-5)
    assert R.linear_routes() == {}

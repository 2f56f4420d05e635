"""The trunk's oneDNN projections (lumina_core/model/linear.py) against the plain PyTorch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lumina_core.model import linear as L
from lumina_core.model import linear_routes as R

pytestmark = pytest.mark.skipif(not R.uses_onednn(torch.zeros(1)), reason="no oneDNN in this PyTorch build")


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    out = fn(*tensors)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    return out.detach(), [t.grad for t in tensors if t is not None]


@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_f_linear_values_and_gradients(bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, 24, generator=gen)
    w = torch.randn(40, 24, generator=gen) / 5
    b = torch.randn(40, generator=gen) if bias else None
    out, grads = _grads(L.linear, x, w, b)
    ref, ref_grads = _grads(F.linear, x, w, b)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert len(grads) == len(ref_grads) == (3 if bias else 2)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_linear_on_row_block_views_and_strided_inputs():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(30, 16, generator=gen, requires_grad=True)
    x = torch.randn(2, 16, 9, generator=gen).transpose(1, 2)  # non-contiguous
    parts = [L.linear(x, blk) for blk in w.split((10, 12, 8))]
    torch.cat(parts, -1).square().sum().backward()
    ref_w = w.detach().clone().requires_grad_(True)
    ref = [F.linear(x, blk) for blk in ref_w.split((10, 12, 8))]
    torch.cat(ref, -1).square().sum().backward()
    for got, want in zip(parts, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad, ref_w.grad, rtol=1e-5, atol=1e-4)


def _swiglu_ref(x, w13, w2):
    w1, w3 = w13.chunk(2)
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


def test_swiglu_training_path_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    x, w13, w2 = torch.randn(4, 11, 32, generator=gen), torch.randn(96, 32, generator=gen) / 4, torch.randn(32, 48, generator=gen) / 4
    out, grads = _grads(L.swiglu, x, w13, w2)
    ref, ref_grads = _grads(_swiglu_ref, x, w13, w2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_swiglu_inference_path_is_fused_and_equal():
    gen = torch.Generator().manual_seed(0)
    x, w13, w2 = torch.randn(4, 11, 32, generator=gen), torch.randn(96, 32, generator=gen), torch.randn(32, 48, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(L.swiglu(x, w13, w2), _swiglu_ref(x, w13, w2), rtol=1e-5, atol=1e-4)


def test_plain_path_when_disabled_or_not_applicable():
    x = torch.randn(2, 8)
    assert R.uses_onednn(x)
    assert not R.uses_onednn(x.double())
    with torch.autocast("cpu", dtype=torch.float16):  # bf16 autocast has a oneDNN route (tests/core/model/)
        assert not R.uses_onednn(x)
    with R.linear_backend("torch"):
        assert not R.uses_onednn(x)
    assert R.uses_onednn(x)  # restored on exit
    with pytest.raises(ValueError, match="linear backend must be one of"):
        R.set_linear_backend("mkl")
    with pytest.raises(ValueError, match="even number of rows"):
        L.swiglu(torch.randn(2, 4), torch.randn(5, 4), torch.randn(4, 2))


def test_expanded_upstream_gradient():
    """Backward receives stride-0 gradients (e.g. from ``.sum()``); the oneDNN path must read them right."""
    w = torch.randn(6, 5, requires_grad=True)
    x = torch.randn(3, 4, 5, requires_grad=True)
    L.linear(x, w).sum().backward()
    torch.testing.assert_close(x.grad, w.detach().sum(0).expand(3, 4, 5), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad, x.detach().sum((0, 1)).expand(6, 5), rtol=1e-5, atol=1e-5)


def test_swiglu_second_backward_raises_instead_of_wrong_gradients():
    x = torch.randn(2, 3, 8, requires_grad=True)
    w13, w2 = torch.randn(12, 8, requires_grad=True), torch.randn(8, 6, requires_grad=True)
    out = L.swiglu(x, w13, w2).square().sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        out.backward()


def test_bad_backend_in_the_environment_is_a_clear_error():
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", "import lumina_core.model.linear_routes"],
        env={**os.environ, "LUMINA_LINEAR_BACKEND": "mkl"}, capture_output=True, text=True,
    )
    assert run.returncode != 0 and "LUMINA_LINEAR_BACKEND must be one of ('auto', 'timed', 'torch', 'blas', 'onednn'); got 'mkl'" in run.stderr


@pytest.mark.parametrize("use", [(0, 1, 2), (0, 2)])  # (0, 2): one output unused, its gradient is None
def test_split_linear_values_and_gradients(use):
    gen = torch.Generator().manual_seed(3)
    x0, w0 = torch.randn(2, 7, 16, generator=gen), torch.randn(28, 16, generator=gen) / 4
    sizes = (12, 8, 8)
    x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    outs = L.split_linear(x, w, sizes)
    sum((outs[i] * (i + 1)).square().sum() for i in use).backward()
    xr, wr = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    refs = [F.linear(xr, blk) for blk in wr.split(sizes)]
    sum((refs[i] * (i + 1)).square().sum() for i in use).backward()
    for got, want in zip(outs, refs, strict=True):
        assert got.is_contiguous()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(w.grad, wr.grad, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="must add up to the weight's 28 rows"):
        L.split_linear(x0, w0, (12, 8))


def test_blas_backend_keeps_the_fused_routes_with_gemm_products():
    """``"blas"``: the same hand-written routes (values and gradients as F.linear's), products by PyTorch's GEMM;
    fp32 only (bf16 autocast takes the plain ops)."""
    with R.linear_backend("blas"):
        x = torch.randn(2, 8)
        assert R.uses_onednn(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not R.uses_onednn(x)
        test_linear_matches_f_linear_values_and_gradients(True)
        test_linear_on_row_block_views_and_strided_inputs()
        test_swiglu_training_path_values_and_gradients()
        test_swiglu_inference_path_is_fused_and_equal()
        test_expanded_upstream_gradient()
        for use in ((0, 1, 2), (0, 2)):
            test_split_linear_values_and_gradients(use)

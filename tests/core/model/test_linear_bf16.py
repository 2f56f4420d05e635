"""The oneDNN route in bf16 (issue #18): under CPU bf16 autocast and with bf16 weights, values and gradients
against PyTorch's own bf16 route (``F.linear`` under autocast) at bf16 tolerances, the dtypes autocast would
give, the operand checks, and a whole trunk step."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model import linear as L
from lumina_core.model import linear_routes as R
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch


def _bf16_route() -> bool:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return R.onednn_dtype(torch.zeros(1)) == torch.bfloat16


pytestmark = pytest.mark.skipif(not _bf16_route(), reason="this CPU's oneDNN has no bf16 support")
BF16 = dict(rtol=2e-2, atol=2e-2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _run(fn, tensors, backend: str, autocast: bool = True):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    with R.linear_backend(backend), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    gen = torch.Generator().manual_seed(7)
    torch.autograd.backward(outs, [torch.randn(o.shape, generator=gen).to(o.dtype) for o in outs])
    return outs, [t.grad for t in leaves]


def test_route_dtype_follows_autocast_and_operands():
    x, xb = torch.randn(2, 8), torch.randn(2, 8).bfloat16()
    assert R.onednn_dtype(x) == torch.float32
    assert R.onednn_dtype(xb) == torch.bfloat16
    assert R.onednn_dtype(x, xb) is None  # mixed dtypes without autocast: PyTorch decides (and raises)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert R.onednn_dtype(x, xb) == torch.bfloat16
        assert R.onednn_dtype(x.double()) is None
        with R.linear_backend("torch"):
            assert R.onednn_dtype(x) is None
    with torch.autocast("cpu", dtype=torch.float16):
        assert R.onednn_dtype(x) is None


@pytest.mark.parametrize("fn_name", ["linear", "split_linear", "swiglu"])
def test_autocast_values_dtypes_and_gradients_match_pytorchs_bf16_route(fn_name):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 13, 48, generator=gen)
    if fn_name == "linear":
        fn, tensors = L.linear, [x, torch.randn(40, 48, generator=gen) / 7, torch.randn(40, generator=gen)]
    elif fn_name == "split_linear":

        def fn(x, w):
            return L.split_linear(x, w, (32, 16, 16))

        tensors = [x, torch.randn(64, 48, generator=gen) / 7]
    else:
        fn, tensors = (
            L.swiglu,
            [x, torch.randn(128, 48, generator=gen) / 7, torch.randn(48, 64, generator=gen) / 8],
        )
    outs, grads = _run(fn, tensors, "auto")
    ref_outs, ref_grads = _run(fn, tensors, "torch")
    for o, r in zip(outs, ref_outs, strict=True):
        assert o.dtype == r.dtype == torch.bfloat16  # what autocast gives F.linear
        torch.testing.assert_close(o.float(), r.float(), **BF16)
    for g, r, t in zip(grads, ref_grads, tensors, strict=True):
        assert g.dtype == r.dtype == t.dtype == torch.float32  # fp32 leaves get fp32 gradients
        assert _rel(g, r) < 1e-2, f"relative gradient error {_rel(g, r):.2e}"
    # and both are bf16 approximations of the fp32 truth
    exact_outs, exact_grads = _run(fn, tensors, "torch", autocast=False)
    for o, e in zip(outs, exact_outs, strict=True):
        assert _rel(o.float(), e) < 1e-2
    for g, e in zip(grads, exact_grads, strict=True):
        assert _rel(g, e) < 2e-2


def test_bf16_weights_without_autocast():
    gen = torch.Generator().manual_seed(1)
    x, w13, w2 = (
        torch.randn(2, 9, 32, generator=gen).bfloat16(),
        (torch.randn(96, 32, generator=gen) / 6).bfloat16(),
        (torch.randn(32, 48, generator=gen) / 7).bfloat16(),
    )
    assert R.uses_onednn(x, w13, w2)
    outs, grads = _run(L.swiglu, [x, w13, w2], "auto", autocast=False)
    ref_outs, ref_grads = _run(L.swiglu, [x, w13, w2], "torch", autocast=False)
    assert outs[0].dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    torch.testing.assert_close(outs[0].float(), ref_outs[0].float(), **BF16)
    for g, r in zip(grads, ref_grads, strict=True):
        assert _rel(g.float(), r.float()) < 1e-2
    with torch.no_grad():  # the fused no-grad SwiGLU in bf16
        torch.testing.assert_close(L.swiglu(x, w13, w2).float(), ref_outs[0].float(), **BF16)


def test_mismatched_operands_are_a_clear_error_not_a_kernel_call():
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with pytest.raises(ValueError, match=r"addend \(2, 6\) is not the product's shape \(4, 6\)"):
        L._mm_add(x, torch.randn(2, 6), w)
    with pytest.raises(ValueError, match=r"x \(4, 8\) and weight \(6, 5\) do not multiply"):
        L.linear(x, torch.randn(6, 5))
    with pytest.raises(ValueError, match=r"bias \(3,\) is not \(6,\)"):
        L.linear(x, w, torch.randn(3))
    with pytest.raises(ValueError, match="mixed dtypes"):
        L._mm(x, w.bfloat16())


def test_trunk_training_step_under_autocast_matches_pytorchs_bf16_route():
    gen = torch.Generator().manual_seed(2)
    cfg = NextDiTConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=32)
    model = LuminaModel(cfg, {"img": AdapterSpec(in_dim=4, out_dim=4, num_axes=2, axis_split=(1, 1))})
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    b, side = 2, 4
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    pos = torch.stack((yy, xx), -1).reshape(1, -1, 2).float().expand(b, -1, -1).contiguous()
    batch = TokenBatch(
        torch.randn(b, side * side, 4, generator=gen),
        pos,
        torch.ones(b, side * side, dtype=torch.bool),
        [(side, side)] * b,
    )
    cond, t = Condition(torch.randn(b, 5, 32, generator=gen), None), torch.rand(b, generator=gen)

    def step(backend, autocast=True):
        model.zero_grad(set_to_none=True)
        with R.linear_backend(backend), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(batch, t, cond)
        out.float().square().mean().backward()
        return out.float().detach(), torch.cat(
            [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        )

    out, grads = step("auto")
    ref_out, ref_grads = step("torch")
    exact_out, exact_grads = step("torch", autocast=False)
    assert _rel(out, ref_out) < 1e-2 and _rel(grads, ref_grads) < 2e-2
    assert _rel(out, exact_out) < 3e-2 and _rel(grads, exact_grads) < 5e-2

"""The trunk's hand-written backward passes (RoPE rotation, scaled RMSNorm) against autograd's own."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model.norm import scaled_rms_norm
from lumina_core.model.rope import apply_rope


def _tables(b: int, n: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.randn(b, n, p, dtype=torch.float64)
    return angles.cos(), angles.sin()


def test_rope_backward_passes_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8, dtype=torch.float64, requires_grad=True)
    cos, sin = _tables(2, 5, 4)
    assert torch.autograd.gradcheck(lambda t: apply_rope(t, cos, sin), (x,))


def test_rope_custom_and_plain_paths_agree():
    """Tables that require grad take the plain differentiable path; both give the same values and x-grads."""
    torch.manual_seed(1)
    x = torch.randn(2, 6, 2, 8, dtype=torch.float64, requires_grad=True)
    cos, sin = _tables(2, 6, 4)
    fast = apply_rope(x, cos, sin)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    plain = apply_rope(x, cos.clone().requires_grad_(), sin.clone().requires_grad_())
    (g_plain,) = torch.autograd.grad(plain.square().sum(), x)
    torch.testing.assert_close(fast, plain)
    torch.testing.assert_close(g_fast, g_plain)


@pytest.mark.parametrize("per_sample_weight", [False, True])
def test_scaled_rms_norm_gradcheck(per_sample_weight: bool):
    torch.manual_seed(2)
    x = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    shape = (2, 1, 6) if per_sample_weight else (6,)
    w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: scaled_rms_norm(a, b, 1e-5), (x, w))


def test_scaled_rms_norm_matches_the_definition():
    torch.manual_seed(3)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    w = torch.randn(3, 1, 16, dtype=torch.float64)
    ref = x / torch.sqrt(x.square().mean(-1, keepdim=True) + 1e-5) * w
    torch.testing.assert_close(scaled_rms_norm(x, w, 1e-5), ref)


def test_scaled_rms_norm_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"weight \(D,\) or \(B, 1, D\)"):
        scaled_rms_norm(torch.randn(2, 3, 4), torch.randn(5), 1e-5)


def test_rms_norm_of_heads_takes_the_kernel_and_matches_f_rms_norm():
    """Per-head q/k norms ((B, L, H, d), weight (d,)) run the hand-written kernel on a (B, L * H, d) view: values
    and gradients as ``F.rms_norm(x) * w``, for a non-contiguous input (a split of a wrapped projection) too."""
    import torch.nn.functional as F

    from lumina_core.model.norm import RMSNorm

    gen = torch.Generator().manual_seed(0)
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8, generator=gen))
    for x0 in (torch.randn(2, 5, 3, 8, generator=gen), torch.randn(2, 5, 3, 8, generator=gen)[:, :, 1:]):
        x = x0.clone().requires_grad_(True) if x0.is_contiguous() else x0.requires_grad_(True)
        y = norm(x)
        g = torch.randn(y.shape, generator=gen)
        y.backward(g)
        x_ref, w_ref = x.detach().clone().requires_grad_(True), norm.weight.detach().clone().requires_grad_(True)
        y_ref = F.rms_norm(x_ref, (8,), None, 1e-6) * w_ref
        y_ref.backward(g)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(norm.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-5)
        norm.weight.grad = None
    assert norm(torch.zeros(0, 3, 2, 8)).shape == (0, 3, 2, 8)

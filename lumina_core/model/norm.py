"""RMSNorm with a per-sample weight, and its hand-derived backward pass.

    y = x * r * w,    r = 1 / sqrt(mean_d(x^2) + eps)                   x (B, L, D), r (B, L, 1)

``w`` is the norm weight (D,) or a per-sample (B, 1, D) weight into which the block folds its modulation
``(1 + s)`` or its gate ``tanh(g)``. With ``u = g * w`` (``g`` the gradient of ``y``) the gradients are

    dL/dw = sum_l g * x * r                 (over the rows that share a weight)
    dL/dx = r * u - x * r^3 * mean_d(u * x)

Both per-row reductions are matrix-vector products (``bmm``) that read their operands once, so the backward
pass writes four (B, L, D) tensors instead of the dozen or so that autograd records for
``x * rsqrt(x.pow(2).mean(-1) + eps) * w``. Low-precision inputs are normalised with fp32 statistics.
Under ``torch.compile`` the plain expression is used instead (the compiler fuses it on its own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def scaled_rms_norm(x: Tensor, weight: Tensor, eps: float, inplace: bool = False) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` for x (B, L, D) and weight (D,) or (B, 1, D); with ``inplace``
    written into ``x`` (only outside autograd: no gradient needed, e.g. sampling; a ValueError otherwise)."""
    d = x.shape[-1]
    if x.dim() != 3 or weight.shape not in ((d,), (x.shape[0], 1, d)):
        raise ValueError(
            f"scaled_rms_norm takes x (B, L, D) and weight (D,) or (B, 1, D); got "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if torch.compiler.is_compiling():  # plain form: the compiler derives and fuses the backward itself
        return F.rms_norm(x, (d,), None, eps) * weight.to(x.dtype)
    if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):  # no graph: no Function
        return _normalise(x, weight.to(x.dtype), _inverse_rms(x, eps), inplace)
    if inplace:
        raise ValueError("scaled_rms_norm(inplace=True) is for tensors that take no part in autograd")
    return _ScaledRMSNorm.apply(x, weight.to(x.dtype), eps)


def _normalise(x: Tensor, weight: Tensor, r: Tensor, inplace: bool = False) -> Tensor:
    """``x * r * weight``, into ``x`` itself when ``inplace``."""
    out = x.mul_(r.to(x.dtype)) if inplace else torch.mul(x, r.to(x.dtype))
    return out.mul_(weight)


def _inverse_rms(x: Tensor, eps: float) -> Tensor:
    """(B, L, 1) ``1 / sqrt(mean(x^2) + eps)`` in fp32 (or fp64), one read of ``x``."""
    acc = torch.promote_types(x.dtype, torch.float32)
    sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=acc).square_()
    return sq.div_(x.shape[-1]).add_(eps).rsqrt_()


class _ScaledRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        r = _inverse_rms(x, eps)
        ctx.save_for_backward(x, weight, r)
        return _normalise(x, weight, r)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        x, weight, r = ctx.saved_tensors
        acc = r.dtype
        g, xa, w = g.to(acc), x.to(acc), weight.to(acc)
        b, _, d = x.shape
        w3 = w.view(-1, 1, d).expand(b, 1, d)
        u = g * w3  # (B, L, D)
        gx = g * xa  # (B, L, D)
        grad_w = torch.bmm(r.transpose(1, 2), gx)  # (B, 1, D): sum_l g x r
        grad_w = grad_w.sum(0).view(d) if weight.dim() == 1 else grad_w
        dot = torch.bmm(gx, w3.transpose(1, 2))  # (B, L, 1): sum_d u x
        coef = dot.mul_(r.pow(3)).div_(d)
        grad_x = u.mul_(r).addcmul_(xa, coef, value=-1.0)
        return grad_x.to(x.dtype), grad_w.to(weight.dtype), None


class RMSNorm(nn.RMSNorm):
    """``x / sqrt(mean(x^2) + eps) * w`` (state dict: ``weight``). ``forward(x, scale)`` folds a per-sample
    (B, 1, D) ``scale`` into the weight first: ``rms(x) * (w * scale)``, one pass fewer than scaling after.
    Inputs of more than 3 dims without ``scale`` (the unified family's per-head q/k, (B, L, H, d)) run the same
    kernel on a (B, L * H, d) view; other shapes take ``F.rms_norm``."""

    def forward(self, x: Tensor, scale: Tensor | None = None, inplace: bool = False) -> Tensor:
        """``inplace``: a 3-D ``x`` that nothing else reads (a sublayer's output) is normalised in place when
        no gradient is being recorded (sampling); otherwise ignored."""
        w = self.weight if scale is None else self.weight * scale
        if x.dim() > 3 and scale is None and x.numel():  # per-head q/k (B, L, H, d): the kernel on (B, L * H, d)
            return scaled_rms_norm(x.reshape(x.shape[0], -1, x.shape[-1]), w, self.eps).view(x.shape)
        if x.dim() != 3:
            return F.rms_norm(x, self.normalized_shape, None, self.eps) * w.to(x.dtype)
        inplace = inplace and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
        return scaled_rms_norm(x, w, self.eps, inplace)

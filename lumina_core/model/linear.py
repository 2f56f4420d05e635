"""The trunk's dense projections and its SwiGLU, run through oneDNN on CPU.

    linear(x, W, b)            = x W^T + b
    split_linear(x, W, sizes)  = (x W_1^T, x W_2^T, ...)                 W = [W_1; W_2; ...] (e.g. q | k | v)
    swiglu(x, W13, W2)         = (silu(x W1^T) * (x W3^T)) W2^T          W13 = [W1; W3] (one parameter, row blocks)

Mathematically nothing changes; what changes is which kernel multiplies. On CPU, fp32, PyTorch's ``F.linear``
calls the BLAS ``sgemm`` (MKL in the PyPI wheels); oneDNN's matmul primitive
(``torch.ops.mkldnn._linear_pointwise``, the op PyTorch's own CPU compiler backend emits) was 7-27 % faster
(mostly about 10 %) on the trunk's shapes on our AMD EPYC (AVX-512) machine (``benchmarks/backbone.py
--kernels``), and it fuses elementwise work into the product:

* no-grad forward (sampling): ``silu`` is fused into the ``W1`` product and the product with ``x W3^T`` into
  the ``W3`` product, so the SwiGLU hidden layer is two kernels instead of four and no separate SiLU or
  multiplication pass reads the (tokens x hidden) activations;
* training: :class:`_Linear` and :class:`_SwiGLUHidden` carry exact hand-written backward passes

      dL/dx = g W                dL/dW = g^T x                dL/db = sum_rows g
      u = x W1^T, v = x W3^T, h = silu(u) v:
      dL/dv = g silu(u),   dL/du = g v silu'(u),   silu'(u) = s(u) (1 + u (1 - s(u))),  s = sigmoid
      dL/dx = dL/du W1 + dL/dv W3   (the sum fused into the second product),
      dL/dW13 = [dL/du^T x ; dL/dv^T x]   (written straight into the two row blocks of one gradient).

  The hidden layer saves ``u`` and ``v`` only (autograd's composite saves three activations), and its
  backward writes the two gradients into them instead of four fresh activation-sized tensors (so it runs
  once: a second backward through the same graph, ``retain_graph=True``, raises).

The plain PyTorch ops are used instead whenever oneDNN does not apply: not a CPU fp32 tensor, autocast on,
``torch.compile`` tracing (the compiler picks its own kernels), a PyTorch without oneDNN, or the backend set
to ``"torch"`` (:func:`set_linear_backend`, :func:`linear_backend` for a block, or
``LUMINA_LINEAR_BACKEND=torch`` in the environment). Both
paths agree to float rounding (about 1e-6 relative); ``tests/test_linear.py`` checks values and gradients.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_BACKENDS = ("auto", "torch")
_backend = os.environ.get("LUMINA_LINEAR_BACKEND", "auto")
if _backend not in _BACKENDS:
    raise ValueError(f"LUMINA_LINEAR_BACKEND must be one of {_BACKENDS}; got {_backend!r}")


def set_linear_backend(name: str) -> None:
    """``"auto"`` (oneDNN for CPU fp32 when available, else PyTorch) or ``"torch"`` (always ``F.linear``)."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"linear backend must be one of {_BACKENDS}; got {name!r}")
    _backend = name


@contextlib.contextmanager
def linear_backend(name: str) -> Iterator[None]:
    """Within the block the backend is ``name`` (see :func:`set_linear_backend`); restored on exit."""
    previous = _backend
    set_linear_backend(name)
    try:
        yield
    finally:
        set_linear_backend(previous)


def _onednn_op():
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return None


_LP = _onednn_op() if torch.backends.mkldnn.is_available() else None


def uses_onednn(*tensors: Tensor | None) -> bool:
    """True when :func:`linear`, :func:`split_linear` and :func:`swiglu` take the oneDNN path for these operands."""
    if _LP is None or _backend != "auto" or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def _mm(x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x W^T (+ b)`` through oneDNN; ``w`` may be a strided view (e.g. a transpose)."""
    return _LP(x, w, bias, "none", [], "")


def _rows(t: Tensor) -> Tensor:
    return t.reshape(-1, t.shape[-1])


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _mm(x, w, b)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _mm(g, w.t())
        if ctx.needs_input_grad[1]:
            gw = torch.mm(_rows(g).t(), _rows(x))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = _rows(g).sum(0)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x W^T + b`` (``F.linear`` semantics), through oneDNN where :func:`uses_onednn` says so."""
    if not uses_onednn(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _Linear.apply(x, weight, bias)
    return _mm(x, weight, bias)


class _RowBlockLinear(torch.autograd.Function):
    """``x W_i^T`` for the row blocks ``W_i`` of one fused weight (q | k | v): in backward the input gradient
    ``sum_i g_i W_i`` is accumulated inside the oneDNN products (no activation-sized additions) and the weight
    gradients are written straight into the row blocks of one buffer."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, sizes: tuple[int, ...]) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.sizes = sizes
        return tuple(_mm(x, blk) for blk in w.split(sizes))

    @staticmethod
    def backward(ctx, *grads: Tensor | None):  # type: ignore[override]
        x, w = ctx.saved_tensors
        blocks = w.split(ctx.sizes)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            for g, blk in zip(grads, blocks, strict=True):
                if g is not None:
                    gx = _mm(g, blk.t()) if gx is None else _LP.binary(g, gx, blk.t(), None, "add")
            if gx is None:
                gx = torch.zeros_like(x)
        if ctx.needs_input_grad[1]:
            gw = torch.empty_like(w)
            xr = _rows(x)
            for g, gblk in zip(grads, gw.split(ctx.sizes), strict=True):
                if g is None:
                    gblk.zero_()
                else:
                    torch.mm(_rows(g).t(), xr, out=gblk)
        return gx, gw, None


def split_linear(x: Tensor, weight: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """``tuple(x W_i^T for W_i in weight.split(sizes))``: projections by the row blocks of one fused weight,
    each output contiguous."""
    sizes = tuple(int(n) for n in sizes)
    if sum(sizes) != weight.shape[0]:
        raise ValueError(f"row blocks {sizes} must add up to the weight's {weight.shape[0]} rows")
    if not uses_onednn(x, weight):
        return tuple(F.linear(x, blk) for blk in weight.split(sizes))
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _RowBlockLinear.apply(x, weight, sizes)
    return tuple(_mm(x, blk) for blk in weight.split(sizes))


class _SwiGLUHidden(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w13: Tensor) -> Tensor:  # type: ignore[override]
        w1, w3 = w13.chunk(2)
        u, v = _mm(x, w1), _mm(x, w3)
        ctx.save_for_backward(x, w13, u, v)
        ctx.spent = False
        return F.silu(u).mul_(v)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        if ctx.spent:
            raise RuntimeError(
                "backward ran twice through lumina's oneDNN SwiGLU (its saved activations become gradient "
                "buffers in the first pass); use LUMINA_LINEAR_BACKEND=torch for retain_graph=True"
            )
        ctx.spent = True
        x, w13, u, v = ctx.saved_tensors
        w1, w3 = w13.chunk(2)
        # u and v are not needed after this pass: they hold the two gradients (no fresh activations)
        gu = torch.ops.aten.silu_backward.grad_input(v.mul_(g), u, grad_input=v)  # g v silu'(u)
        gv = F.silu(u, inplace=True).mul_(g)  # g silu(u)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _LP.binary(gv, _mm(gu, w1.t()), w3.t(), None, "add")
        if ctx.needs_input_grad[1]:
            hidden = w1.shape[0]
            gw = torch.empty_like(w13)
            xr = _rows(x)
            torch.mm(_rows(gu).t(), xr, out=gw[:hidden])
            torch.mm(_rows(gv).t(), xr, out=gw[hidden:])
        return gx, gw


def swiglu(x: Tensor, w13: Tensor, w2: Tensor) -> Tensor:
    """``(silu(x W1^T) * x W3^T) W2^T`` with ``W13 = [W1; W3]`` of shape (2 * hidden, dim)."""
    if w13.shape[0] % 2:
        raise ValueError(f"w13 must stack W1 and W3 (an even number of rows); got shape {tuple(w13.shape)}")
    if not uses_onednn(x, w13, w2):
        w1, w3 = w13.chunk(2)  # row blocks (views): contiguous halves, a faster SiLU
        return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    if torch.is_grad_enabled() and (x.requires_grad or w13.requires_grad):
        return linear(_SwiGLUHidden.apply(x, w13), w2)
    w1, w3 = w13.chunk(2)
    h = _LP.binary(x, _LP(x, w1, None, "swish", [], ""), w3, None, "mul")  # silu(x W1^T) * (x W3^T), fused
    return linear(h, w2)

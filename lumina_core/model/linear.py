"""The trunk's dense projections and its SwiGLU: the kernels, their hand-written backward passes, and the
modules that call them.

    linear(x, W, b)            = x W^T + b
    split_linear(x, W, sizes)  = (x W_1^T, x W_2^T, ...)                 W = [W_1; W_2; ...] (e.g. q | k | v)
    swiglu(x, W13, W2)         = (silu(x W1^T) * (x W3^T)) W2^T          W13 = [W1; W3] (one parameter, row blocks)

The trunk holds its projections as modules (:class:`Linear`, :class:`RowBlockLinear`, :class:`GatedLinear`)
whose ``forward`` is :func:`linear`, so hooks and wrappers (peft's LoRA, quantisation, profilers) see every
call; a fused projection holds its faster route itself (:meth:`RowBlockLinear.blocks` by :func:`split_linear`,
:meth:`GatedLinear.gated` by :func:`swiglu_hidden`, each on its own weight) and takes it only while the module
is bare (:func:`is_bare`).

Which kernel multiplies - oneDNN's matmul primitive (``torch.ops.mkldnn._linear_pointwise``), PyTorch's BLAS
GEMM, or the plain ``F.linear`` - is the linear backend's choice, :mod:`lumina_core.model.linear_routes`
(``LUMINA_LINEAR_BACKEND``, :func:`set_linear_backend`, :func:`linear_backend`, the opt-in timed choice; its
public names are importable from here too). Mathematically nothing changes; on the oneDNN route elementwise
work is fused into the product:

* no-grad forward (sampling): ``silu`` is fused into the ``W1`` product and the product with ``x W3^T`` into
  the ``W3`` product, so the SwiGLU hidden layer is two kernels instead of four and no separate SiLU or
  multiplication pass reads the (tokens x hidden) activations;
* training: :class:`_Linear` and :class:`_SwiGLUHidden` carry exact hand-written backward passes

      dL/dx = g W                dL/dW = g^T x                dL/db = sum_rows g
      u = x W1^T, v = x W3^T, h = silu(u) v:
      dL/dv = g silu(u),   dL/du = g v silu'(u),   silu'(u) = s(u) (1 + u (1 - s(u))),  s = sigmoid
      dL/dx = dL/du W1 + dL/dv W3   (the sum fused into the second product),
      dL/dW13 = [dL/du^T x ; dL/dv^T x]   (written straight into the two row blocks of one gradient).

  The hidden layer saves ``u``, ``v`` and ``silu(u)`` (as autograd's composite does: one SiLU pass fewer in
  backward than recomputing it), and its backward writes the gradients ``dL/du``, ``dL/dv`` into ``v`` and
  ``silu(u)`` instead of fresh activation-sized tensors (so it runs once: a second backward through the
  same graph, ``retain_graph=True``, raises).

bf16 (where :func:`onednn_dtype` says so): operands are cast to bf16 by differentiable casts outside the
kernels, exactly as autocast casts ``F.linear``'s operands, so a fp32 weight receives its gradient in fp32
(computed in bf16, then cast, as autocast does); products accumulate in fp32 inside oneDNN and round their
outputs to bf16. The input-gradient products ``g W`` take PyTorch's own bf16 GEMM (``matmul``/``addmm``):
oneDNN's inner product on a transposed bf16 weight was slower.

All routes agree to float rounding (about 1e-6 relative in fp32, bf16 rounding in bf16);
``tests/core/model/test_linear.py``, ``test_linear_routes.py`` and ``tests/core/model/`` check values and
gradients.

Safety: oneDNN's ``_linear_pointwise.binary`` compares only the ranks of a 2-D addend and the product (an
(8, 32) addend to a (64, 32) product is accepted and read past its end), and the plain form reports
mismatched sizes only as "could not create a primitive descriptor". Every call here goes through
:func:`_mm` / :func:`_mm_add` (and the no-grad SwiGLU through :func:`_check`), which check shapes and dtypes
first and raise a ValueError that names them. ``tests/core/model/test_kernels_stress.py`` runs the kernels
and the hand-written backward passes on many shapes (widths 1-17, strided, transposed and broadcast
operands and gradients, whole tiny-trunk steps on 4-wide tokens) under glibc's heap checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as _hooks

from lumina_core.model import linear_routes as _routes
from lumina_core.model.linear_routes import (  # the backend policy's public names, importable from here too
    clear_linear_routes,
    intel_cpu,
    linear_backend,
    linear_routes,
    onednn_dtype,
    set_linear_backend,
    uses_onednn,
)

__all__ = [
    "GatedLinear",
    "Linear",
    "RowBlockLinear",
    "clear_linear_routes",
    "gated_hidden",
    "intel_cpu",
    "is_bare",
    "linear",
    "linear_backend",
    "linear_routes",
    "onednn_dtype",
    "row_blocks",
    "set_linear_backend",
    "silu_gate",
    "split_linear",
    "swiglu",
    "swiglu_hidden",
    "uses_onednn",
]


def _cast(dtype: torch.dtype, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """Differentiable casts to the route's dtype (no-ops when already there), as autocast casts F.linear's."""
    return tuple(None if t is None else t.to(dtype) for t in tensors)


def _check(x: Tensor, w: Tensor, bias: Tensor | None, other: Tensor | None) -> None:
    """The operand contract of oneDNN's ``_linear_pointwise``: matching inner sizes, a bias of the output
    width, an addend of the product's exact shape (the ``.binary`` form checks only its rank for 2-D
    operands and would read past a smaller one), one dtype. Checked here, with an error naming the shapes."""
    problems = []
    if w.dim() != 2 or x.dim() < 1 or x.shape[-1] != w.shape[1]:
        problems.append(f"x {tuple(x.shape)} and weight {tuple(w.shape)} do not multiply (x W^T)")
    if bias is not None and tuple(bias.shape) != (w.shape[0],):
        problems.append(f"bias {tuple(bias.shape)} is not ({w.shape[0]},)")
    if other is not None and tuple(other.shape) != (*x.shape[:-1], w.shape[0]):
        problems.append(f"addend {tuple(other.shape)} is not the product's shape {(*x.shape[:-1], w.shape[0])}")
    dtypes = {t.dtype for t in (x, w, bias, other) if t is not None}
    if len(dtypes) != 1:
        problems.append(f"operands of mixed dtypes {sorted(str(d) for d in dtypes)}")
    if problems:
        raise ValueError("oneDNN product: " + "; ".join(problems))


def _mm(x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x W^T (+ b)`` through oneDNN or BLAS (:func:`~lumina_core.model.linear_routes._route`); ``w`` may be a strided view (e.g. a
    transpose), ``x`` any layout (the kernel wrapper makes it contiguous)."""
    _check(x, w, bias, None)
    return _routes._route(
        "x W^T", x, w.shape[0], lambda: _routes._LP(x, w, bias, "none", [], ""), lambda: F.linear(x, w, bias)
    )


def _mm_add(x: Tensor, other: Tensor, w: Tensor) -> Tensor:
    """``other + x W^T`` in one call (the sum is a post-op of the oneDNN product, the beta of BLAS ``addmm``),
    into a fresh tensor."""
    _check(x, w, None, other)
    return _routes._route(
        "o + x W^T",
        x,
        w.shape[0],
        lambda: _routes._LP.binary(x, other, w, None, "add"),
        lambda: torch.addmm(_rows(other), _rows(x), w.t()).view(other.shape),
    )


def _mm_t(g: Tensor, w: Tensor) -> Tensor:
    """``g W`` (an input gradient): oneDNN with the transposed weight or BLAS in fp32 (:func:`~lumina_core.model.linear_routes._route`), PyTorch's
    own GEMM in bf16 (as fast or faster than oneDNN's inner product on a transposed bf16 weight,
    ``benchmarks/backbone.py --bf16``)."""
    _check(g, w.t(), None, None)
    if g.dtype == torch.bfloat16:
        return torch.matmul(g, w)
    return _routes._route(
        "g W", g, w.shape[1], lambda: _routes._LP(g, w.t(), None, "none", [], ""), lambda: torch.matmul(g, w)
    )


def _mm_t_add(g: Tensor, other: Tensor, w: Tensor) -> Tensor:
    """``other + g W`` into a fresh tensor (the sum inside the product), as :func:`_mm_t` chooses kernels."""
    _check(g, w.t(), None, other)

    def blas() -> Tensor:
        return torch.addmm(_rows(other), _rows(g), w).view(other.shape)

    if g.dtype == torch.bfloat16:
        return blas()
    return _routes._route(
        "o + g W", g, w.shape[1], lambda: _routes._LP.binary(g, other, w.t(), None, "add"), blas
    )


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
            gx = _mm_t(g, w)
        if ctx.needs_input_grad[1]:
            gw = torch.mm(_rows(g).t(), _rows(x))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = _rows(g).sum(0)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x W^T + b`` (``F.linear`` semantics), through oneDNN where :func:`uses_onednn` says so."""
    dtype = onednn_dtype(x, weight, bias)
    if dtype is None:
        return F.linear(x, weight, bias)
    x, weight, bias = _cast(dtype, x, weight, bias)
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
                    gx = _mm_t(g, blk) if gx is None else _mm_t_add(g, gx, blk)
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
    dtype = onednn_dtype(x, weight)
    if dtype is None:
        return tuple(F.linear(x, blk) for blk in weight.split(sizes))
    x, weight = _cast(dtype, x, weight)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _RowBlockLinear.apply(x, weight, sizes)
    return tuple(_mm(x, blk) for blk in weight.split(sizes))


class _SwiGLUHidden(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w13: Tensor) -> Tensor:  # type: ignore[override]
        w1, w3 = w13.chunk(2)
        u, v = _mm(x, w1), _mm(x, w3)
        s = F.silu(u)
        ctx.save_for_backward(x, w13, u, v, s)
        ctx.spent = False
        return s * v

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        if ctx.spent:
            raise RuntimeError(
                "backward ran twice through lumina's oneDNN SwiGLU (its saved activations become gradient "
                "buffers in the first pass); use LUMINA_LINEAR_BACKEND=torch for retain_graph=True"
            )
        ctx.spent = True
        x, w13, u, v, s = ctx.saved_tensors
        w1, w3 = w13.chunk(2)
        # u, v and s are not needed after this pass: v and s hold the two gradients (no fresh activations)
        gu = torch.ops.aten.silu_backward.grad_input(v.mul_(g), u, grad_input=v)  # g v silu'(u)
        gv = s.mul_(g)  # g silu(u)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _mm_t_add(gv, _mm_t(gu, w1), w3)
        if ctx.needs_input_grad[1]:
            hidden = w1.shape[0]
            gw = torch.empty_like(w13)
            xr = _rows(x)
            torch.mm(_rows(gu).t(), xr, out=gw[:hidden])
            torch.mm(_rows(gv).t(), xr, out=gw[hidden:])
        return gx, gw


def swiglu_hidden(x: Tensor, w13: Tensor) -> Tensor:
    """``silu(x W1^T) * x W3^T`` with ``W13 = [W1; W3]`` of shape (2 * hidden, dim): the SwiGLU hidden layer."""
    if w13.shape[0] % 2:
        raise ValueError(f"w13 must stack W1 and W3 (an even number of rows); got shape {tuple(w13.shape)}")
    dtype = onednn_dtype(x, w13)
    if dtype is None:
        w1, w3 = w13.chunk(2)  # row blocks (views): contiguous halves, a faster SiLU
        return F.silu(F.linear(x, w1)) * F.linear(x, w3)
    x, w13 = _cast(dtype, x, w13)
    if torch.is_grad_enabled() and (x.requires_grad or w13.requires_grad):
        return _SwiGLUHidden.apply(x, w13)
    w1, w3 = w13.chunk(2)
    _check(x, w1, None, None)
    return _routes._route(
        "silu(x W1^T) * x W3^T",
        x,
        w1.shape[0],
        # SiLU and product fused
        lambda: _routes._LP.binary(x, _routes._LP(x, w1, None, "swish", [], ""), w3, None, "mul"),
        lambda: F.silu(F.linear(x, w1), inplace=True).mul_(F.linear(x, w3)),
    )


def swiglu(x: Tensor, w13: Tensor, w2: Tensor) -> Tensor:
    """``(silu(x W1^T) * x W3^T) W2^T`` with ``W13 = [W1; W3]`` of shape (2 * hidden, dim)."""
    return linear(swiglu_hidden(x, w13), w2)


# -- modules -------------------------------------------------------------------------------------------------
# The trunk calls every projection through a module, so forward hooks, peft's LoRA, quantisation wrappers and
# profilers see it. A fused projection (q | k | v, or W1 | W3 of the SwiGLU) has two routes with one result:
# its module call (full width, what any wrapper sees; split afterwards) and a faster route that produces the
# row blocks (or the SwiGLU hidden layer) without a split. Each fused projection holds its own fast route as
# a method that reads its own weight (:meth:`RowBlockLinear.blocks`, :meth:`GatedLinear.gated`) and takes it
# only when :func:`is_bare` says a module call would run nothing but its own forward; otherwise the method
# goes through the module call. A wrapper that replaces the module (peft's ``lora.Linear``) has no such
# method: :func:`row_blocks` and :func:`gated_hidden` call it as a module and split its output.
class Linear(nn.Linear):
    """``nn.Linear`` whose ``forward`` is :func:`linear` (oneDNN on CPU, ``F.linear`` elsewhere); same
    parameters, state dict and initialisation as ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


class RowBlockLinear(Linear):
    """A projection whose output rows are consecutive blocks (``sizes``, e.g. q | k | v): ``forward`` gives the
    full width ``x W^T``; :meth:`blocks` gives the blocks ``(x W_1^T, x W_2^T, ...)``, each contiguous."""

    def __init__(self, in_features: int, sizes: Sequence[int], bias: bool = False, **kw: Any) -> None:
        super().__init__(in_features, sum(int(n) for n in sizes), bias=bias, **kw)
        self.sizes = tuple(int(n) for n in sizes)

    def blocks(self, x: Tensor) -> tuple[Tensor, ...]:
        """``self(x).split(sizes, -1)``: by :func:`split_linear` on this module's weight while it is bare and
        has no bias, by the module call (hooks, subclasses) otherwise."""
        if self.bias is None and is_bare(self, RowBlockLinear):
            return split_linear(x, self.weight, self.sizes)
        return self(x).split(self.sizes, dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, blocks={self.sizes}"


class GatedLinear(Linear):
    """The SwiGLU's input projection ``W13 = [W1; W3]`` (rows, one parameter): ``forward`` gives the full width
    ``x W13^T = [u | v]``; :meth:`gated` gives the hidden layer ``silu(u) * v``."""

    def __init__(self, in_features: int, hidden: int, bias: bool = False, **kw: Any) -> None:
        super().__init__(in_features, 2 * hidden, bias=bias, **kw)

    def gated(self, x: Tensor) -> Tensor:
        """``silu(u) * v`` of ``[u | v] = self(x)``: by :func:`swiglu_hidden` on this module's weight (fused
        oneDNN kernels, hand-written backward) while it is bare and has no bias, by the module call otherwise."""
        if self.bias is None and is_bare(self, GatedLinear):
            return swiglu_hidden(x, self.weight)
        return silu_gate(self(x))


def silu_gate(uv: Tensor) -> Tensor:
    """``silu(u) * v`` of the two halves ``[u | v]`` of the last dimension."""
    u, v = uv.chunk(2, dim=-1)
    return F.silu(u) * v


def row_blocks(module: nn.Module, x: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """``module(x).split(sizes, -1)`` for a :class:`RowBlockLinear` or whatever wraps one: the module's own
    :meth:`~RowBlockLinear.blocks` when it is one, the module call otherwise."""
    if isinstance(module, RowBlockLinear):
        return module.blocks(x)
    return module(x).split(tuple(sizes), dim=-1)


def gated_hidden(module: nn.Module, x: Tensor) -> Tensor:
    """``silu(u) * v`` of ``[u | v] = module(x)`` for a :class:`GatedLinear` or whatever wraps one: the module's
    own :meth:`~GatedLinear.gated` when it is one, the module call otherwise."""
    if isinstance(module, GatedLinear):
        return module.gated(x)
    return silu_gate(module(x))


def is_bare(module: nn.Module, cls: type) -> bool:
    """True when ``module(x)`` would run exactly ``cls.forward`` and nothing else: the module is of class
    ``cls`` itself (not a wrapper such as peft's ``lora.Linear``, a parametrized or quantised subclass), its
    ``forward`` is not replaced on the instance, and no forward or backward hook (of the module or global)
    is registered. Only then may the trunk read its weight directly."""
    if type(module) is not cls or "forward" in module.__dict__:
        return False
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks:
        return False
    return not (
        _hooks._global_forward_hooks
        or _hooks._global_forward_pre_hooks
        or _hooks._global_backward_hooks
        or _hooks._global_backward_pre_hooks
    )

"""Child process of ``test_kernels_stress.py``: the trunk's hand-written kernels on many shapes and layouts.

Run under glibc's heap checker (``MALLOC_CHECK_=3``, ``MALLOC_PERTURB_=165`` and, on glibc >= 2.34, the
``libc_malloc_debug.so`` preload that makes those variables work): a write past the end of a heap block
changes the guard byte after it and aborts the process at the block's ``free``; a read of freed memory sees
the perturbation byte and makes the comparison below fail. Every case compares the oneDNN route
(``lumina_core/model/linear.py``) and the hand-written backward passes (``norm.py``, ``rope.py``) with the
plain PyTorch ops, values and gradients, so a kernel that writes into the wrong place fails either way.

Prints ``kernels-stress OK <cases>`` and exits 0, or prints the mismatches and exits 1.
"""

from __future__ import annotations

import itertools
import sys

import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model import linear as L
from lumina_core.model import linear_routes as R
from lumina_core.model.norm import scaled_rms_norm
from lumina_core.model.rope import apply_rope
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

torch.set_num_threads(1)
GEN = torch.Generator().manual_seed(0)
FAILURES: list[str] = []
CASES = 0


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN)


def layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values in another memory layout: contiguous, transposed, a strided slice or a broadcast."""
    if kind == "contiguous":
        return t.contiguous()
    if kind == "transposed":  # same shape, last two dims swapped in memory
        return t.transpose(-1, -2).contiguous().transpose(-1, -2) if t.dim() >= 2 else t
    if kind == "strided":  # every other element of a twice-as-wide buffer
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        wide[..., ::2] = t
        return wide[..., ::2]
    if kind == "expanded" and t.shape[0] > 1:  # stride 0 along the first dim
        return t[:1].expand(t.shape)
    return t


def close(
    name: str, got: torch.Tensor | None, want: torch.Tensor | None, tol: float, floor: float = 1e-6
) -> None:
    """Error relative to the reference's scale (at least ``floor``; bf16: a few rounding units)."""
    global CASES
    CASES += 1
    if got is None or want is None:
        if (got is None) != (want is None):
            FAILURES.append(f"{name}: one side has no gradient")
        return
    if got.shape != want.shape:
        FAILURES.append(f"{name}: shape {tuple(got.shape)} vs {tuple(want.shape)}")
        return
    got, want = got.double(), want.double()
    scale = max(want.abs().max().item(), floor)
    err = (got - want).abs().max().item() / scale
    if not err <= tol:  # also catches NaN
        FAILURES.append(f"{name}: max error {err:.3g} of the reference's scale (tolerance {tol})")


def both_routes(fn, inputs: list[torch.Tensor | None], grad_layout: str, bf16: bool):
    """(outputs, input gradients) of ``fn`` on the oneDNN route and on the plain route."""
    results = []
    seed = int(torch.randint(1 << 30, (1,), generator=GEN))  # the same upstream gradients for both routes
    for backend in ("onednn", "torch"):
        gen = torch.Generator().manual_seed(seed)
        leaves = [None if t is None else t.detach().clone().requires_grad_(True) for t in inputs]
        args = [None if t is None else layout(t, k) for t, k in zip(leaves, LAYOUTS, strict=False)]
        with R.linear_backend(backend):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                outs = fn(*args)
            outs = outs if isinstance(outs, tuple) else (outs,)
            grads = [layout(torch.randn(o.shape, generator=gen).to(o.dtype), grad_layout) for o in outs]
            torch.autograd.backward(outs, grads)
        results.append(([o.detach().float() for o in outs], [None if t is None else t.grad for t in leaves]))
    return results


LAYOUTS: list[str] = []


def products(bf16: bool) -> None:
    """linear, split_linear and swiglu at tiny and odd widths, every operand layout, both routes."""
    tol = 2e-2 if bf16 else 1e-4
    kinds = ("contiguous", "transposed", "strided", "expanded")
    widths = (1, 2, 3, 4, 5, 8, 17)
    for i, (din, dout) in enumerate(itertools.product(widths, widths)):
        rows = (1, 2, 3, 7)[i % 4]
        LAYOUTS[:] = [kinds[i % 4], kinds[(i // 4) % 4], "contiguous"]
        grad_layout = kinds[(i + 1) % 4]
        x, w = randn(2, rows, din), randn(dout, din) / din**0.5
        b = randn(dout) if i % 2 else None
        tag = (
            f"{'bf16' if bf16 else 'fp32'} din={din} dout={dout} rows={rows} {LAYOUTS[:2]} grad {grad_layout}"
        )
        (o1, g1), (o2, g2) = both_routes(L.linear, [x, w, b], grad_layout, bf16)
        close(f"linear {tag}", o1[0], o2[0], tol)
        for k, (a, c) in enumerate(zip(g1, g2, strict=True)):
            close(f"linear grad {k} {tag}", a, c, tol)

        sizes = (dout, 1 + i % 3, dout)

        def split(x, w, sizes=sizes):
            return L.split_linear(x, w, sizes)

        (o1, g1), (o2, g2) = both_routes(split, [x, randn(sum(sizes), din)], grad_layout, bf16)
        for k, (a, c) in enumerate(zip(o1, o2, strict=True)):
            close(f"split_linear out {k} {tag}", a, c, tol)
        for k, (a, c) in enumerate(zip(g1, g2, strict=True)):
            close(f"split_linear grad {k} {tag}", a, c, tol)

        hidden = dout
        inputs = [x, randn(2 * hidden, din) / din**0.5, randn(din, hidden) / hidden**0.5]
        (o1, g1), (o2, g2) = both_routes(L.swiglu, inputs, grad_layout, bf16)
        close(f"swiglu {tag}", o1[0], o2[0], tol)
        for k, (a, c) in enumerate(zip(g1, g2, strict=True)):
            close(f"swiglu grad {k} {tag}", a, c, tol)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fused = L.swiglu(layout(x, LAYOUTS[0]), *inputs[1:])
            with R.linear_backend("torch"):
                plain = L.swiglu(layout(x, LAYOUTS[0]), *inputs[1:])
        close(f"no-grad swiglu {tag}", fused.float(), plain.float(), tol)


def norm_and_rope() -> None:
    """The hand-written RMSNorm and RoPE backward passes at tiny widths and strided inputs vs autograd."""
    for d, per_sample, kind in itertools.product(
        (1, 2, 3, 4, 8, 33), (False, True), ("contiguous", "strided")
    ):
        x0 = randn(2, 5, d)
        w0 = randn(2, 1, d) if per_sample else randn(d)
        g = randn(2, 5, d)
        x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        out = scaled_rms_norm(layout(x, kind), w, 1e-5)
        out.backward(layout(g, kind))
        xr, wr = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        ref = xr * torch.rsqrt(xr.square().mean(-1, keepdim=True) + 1e-5) * wr
        ref.backward(g)
        close(f"rms_norm d={d} {kind}", out.detach(), ref.detach(), 1e-5)
        close(
            f"rms_norm grad x d={d} {kind}", x.grad, xr.grad, 1e-4, floor=1e-2
        )  # d = 1: x / |x|, gradient ~0
        close(f"rms_norm grad w d={d} {kind}", w.grad, wr.grad, 1e-4)
    for hd, kind in itertools.product((2, 4, 8), ("contiguous", "strided")):
        ang = randn(2, 6, hd // 2)
        x0, g = randn(2, 6, 3, hd), randn(2, 6, 3, hd)
        x = x0.clone().requires_grad_(True)
        out = apply_rope(layout(x, kind), ang.cos(), ang.sin())
        out.backward(layout(g, kind))
        xr = x0.clone().requires_grad_(True)
        ref = apply_rope(xr, ang.cos().requires_grad_(True), ang.sin().requires_grad_(True))  # autograd path
        ref.backward(g)
        close(f"rope hd={hd} {kind}", out.detach(), ref.detach(), 1e-5)
        close(f"rope grad hd={hd} {kind}", x.grad, xr.grad, 1e-5)


def model_steps(bf16: bool) -> None:
    """Whole training steps of a tiny trunk on 4-wide tokens (16x16 grey, patch 2 in miniature), padded
    tokens and captions, with and without gradient checkpointing, oneDNN route vs plain route."""
    tol = 3e-2 if bf16 else 1e-4
    for dim, heads, kv, ckpt in ((8, 1, 1, False), (16, 2, 1, True), (16, 4, 2, False), (32, 4, 1, True)):
        cfg = NextDiTConfig(
            dim=dim, n_layers=2, n_heads=heads, n_kv_heads=kv, context_dim=12, grad_checkpointing=ckpt
        )
        spec = AdapterSpec(in_dim=4, out_dim=4, num_axes=2, axis_split=(1, 1), train_extent=(3, 3))
        model = LuminaModel(cfg, {"grey": spec})
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(randn(*p.shape) * 0.2)
        b, side = 3, 3
        yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        pos = torch.stack((yy, xx), -1).reshape(1, -1, 2).float().expand(b, -1, -1).contiguous()
        mask = torch.ones(b, side * side, dtype=torch.bool)
        mask[1, -3:] = False
        batch = TokenBatch(randn(b, side * side, 4), pos, mask, [(side, side)] * b)
        cmask = torch.ones(b, 5, dtype=torch.bool)
        cmask[0, 2:] = False
        cond, t = Condition(randn(b, 5, 12), cmask), torch.rand(b, generator=GEN)
        target = randn(b, side * side, 4)
        runs = []
        for backend in ("onednn", "torch"):
            model.zero_grad(set_to_none=True)
            with R.linear_backend(backend):  # backward inside: checkpointed layers recompute on this route
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = model(batch, t, cond)
                ((out.float() - target).square() * mask[..., None]).mean().backward()
            grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
            with (
                torch.no_grad(),
                R.linear_backend(backend),
                torch.autocast("cpu", torch.bfloat16, enabled=bf16),
            ):
                sampled = model(batch, t, cond).float()
            runs.append((out.detach().float(), grads, sampled))
        tag = f"{'bf16' if bf16 else 'fp32'} dim={dim} heads={heads}/{kv} ckpt={ckpt}"
        close(f"model out {tag}", runs[0][0], runs[1][0], tol)
        close(f"model no-grad out {tag}", runs[0][2], runs[1][2], tol)
        flat = [torch.cat([g.flatten().float() for g in r[1]]) for r in runs]
        close(f"model grads {tag}", flat[0], flat[1], tol)


def main() -> int:
    bf16 = R.onednn_dtype(torch.zeros(1)) is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = bf16 and R.onednn_dtype(torch.zeros(1)) == torch.bfloat16
    for precision_bf16 in (False, True) if bf16 else (False,):
        products(precision_bf16)
        model_steps(precision_bf16)
    norm_and_rope()
    if FAILURES:
        print(f"{len(FAILURES)} of {CASES} comparisons failed:", *FAILURES[:40], sep="\n")
        return 1
    print(f"kernels-stress OK {CASES} comparisons (bf16 route {'on' if bf16 else 'not available'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

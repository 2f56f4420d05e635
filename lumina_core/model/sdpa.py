"""Scaled dot-product attention with the precision chosen for the CPU: fp32 attention inside a bf16 region.

    out = softmax(q k^T / sqrt(d) + mask) v           (torch's ``scaled_dot_product_attention``)

Under CPU autocast to bf16 (``train.precision=bf16-mixed``, ``sampling.precision=bf16``) PyTorch runs this
in bf16, and on CPUs its bf16 flash-attention *backward* is several times slower than the fp32 one
(docs/benchmarks.md: 21.1 vs 5.8 ms for the shapes recipe's self-attention, forward+backward). With the
``"fp32"`` rule (the default) :func:`sdpa` runs the attention itself in fp32 whenever its inputs are bf16 or
fp16 on the CPU or CPU autocast is on: q, k, v are cast up, autocast is switched off for that one call (CPU
autocast would otherwise cast them straight back) and the output is cast back to the dtype the region runs
in. The products around it (q/k/v, output projection, SwiGLU) stay in bf16. Gradients flow through the
casts, so q, k and v get gradients in their own dtype. On other devices (CUDA flash attention is fast in
bf16) and in plain fp32 nothing changes.

``set_attention_precision("auto")`` (or ``with attention_precision("auto"):``, or
``LUMINA_CPU_ATTENTION=auto``) restores PyTorch's own choice, for comparisons.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

RULES = ("fp32", "auto")
_LOW = (torch.bfloat16, torch.float16)


def _from_env() -> str:
    rule = os.environ.get("LUMINA_CPU_ATTENTION", "fp32")
    if rule not in RULES:
        raise ValueError(f"LUMINA_CPU_ATTENTION must be one of {RULES}; got {rule!r}")
    return rule


_rule = _from_env()


def set_attention_precision(rule: str) -> None:
    """``"fp32"``: CPU attention in fp32 inside bf16/fp16 regions (default); ``"auto"``: PyTorch's choice."""
    global _rule
    if rule not in RULES:
        raise ValueError(f"attention precision must be one of {RULES}; got {rule!r}")
    _rule = rule


def get_attention_precision() -> str:
    return _rule


@contextlib.contextmanager
def attention_precision(rule: str) -> Iterator[None]:
    """The rule of :func:`set_attention_precision` for a block."""
    old = _rule
    set_attention_precision(rule)
    try:
        yield
    finally:
        set_attention_precision(old)


def sdpa(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, enable_gqa: bool = False
) -> Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, enable_gqa=...)``, in fp32 on the CPU inside a
    low-precision region under the ``"fp32"`` rule (module docstring). The result has the dtype the region
    computes in: bf16 under CPU autocast to bf16, else q's dtype."""
    if _rule == "fp32" and q.device.type == "cpu":
        region = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        out_dtype = region if region in _LOW else (q.dtype if q.dtype in _LOW else None)
        if out_dtype is not None:
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=attn_mask, enable_gqa=enable_gqa
                )
            return out.to(out_dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=enable_gqa)

"""Next-DiT attention: self-attention with N-D RoPE and GQA, plus a gated parallel cross-attention.

    q = LN_q(W_q x), k = LN_k(W_k x), v = W_v x          (QK-norm over the whole projected width; with
                                                          ``qk_norm_kind="head_rms"``: RMSNorm of each head)
    q, k <- RoPE(q), RoPE(k)                              (fp32 rotation, per-axis frequencies)
    o_self  = softmax(q k^T * a / sqrt(d) + mask) v       (a: proportional-attention factor, default 1)
    o_cross = softmax(q k_y^T / sqrt(d) + mask_y) v_y     (k_y = LN_ky(W_ky y), v_y = W_vy y, no RoPE)
    out     = W_o(o_self + tanh(gate_h) * o_cross)        (one gate per head)

The cross-attention reads the same rotated query ``q`` (the released model), or, with
``separate_cross_query``, its own ``q_y = RoPE(LN_qy(W_qy x))`` (diffusers' ``attn2.to_q`` / ``attn2.norm_q``
when they differ from ``attn1``'s, e.g. after fine-tuning in diffusers).

One fused parameter holds the q, k and v projections (``wqkv``), one the caption keys and values (``wkv_y``).
Each is a :class:`~lumina_core.model.linear.RowBlockLinear` whose own fast route
(:meth:`~lumina_core.model.linear.RowBlockLinear.blocks`) applies the row blocks of its weight in one autograd
node (:func:`~lumina_core.model.linear.split_linear`, oneDNN products on CPU), so each of q, k, v comes out
contiguous: QK-norm and RoPE then run without a strided copy, and the backward pass sums the input gradient
inside the products and writes the weight gradients into the row blocks of one buffer. That route is taken
only while the projection module is bare (:func:`~lumina_core.model.linear.is_bare`); a hooked or wrapped
projection (peft's LoRA, a quantisation wrapper) is called as a module and its output split.

Under ``train.composition: [task_lora]`` the stream's context carries the running task's low-rank updates
(``ctx.lora``): ``W_qkv x + s B A x`` and ``W_o o + s B' A' o`` (the caption keys and values are not adapted).

What the attention reads besides its input (rotations, key masks, proportional-attention factor, context drop)
comes in the stream's :class:`~lumina_core.model.context.ForwardContext`.
Grouped-query attention runs through ``scaled_dot_product_attention(enable_gqa=True)``: query head ``h``
reads key/value head ``h // (n_heads / n_kv_heads)``, and K/V are never repeated in memory.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumina_core.model.context import ForwardContext
from lumina_core.model.linear import Linear, RowBlockLinear, row_blocks
from lumina_core.model.norm import RMSNorm
from lumina_core.model.rope import apply_rope
from lumina_core.model.sdpa import sdpa


class Attention(nn.Module):
    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int,
        context_dim: int | None,
        qk_norm: bool = True,
        separate_cross_query: bool = False,
        qk_norm_kind: str = "layer",
        qk_norm_eps: float = 1e-5,
    ) -> None:
        """``qk_norm_kind``: ``"layer"`` (Lumina-Next: affine LayerNorm over the whole projected width) or
        ``"head_rms"`` (Lumina-Image 2.0 / Z-Image: RMSNorm of each head, weight (head_dim,), eps
        ``qk_norm_eps``)."""
        super().__init__()
        if qk_norm_kind not in ("layer", "head_rms"):
            raise ValueError(f"qk_norm_kind must be 'layer' or 'head_rms', got {qk_norm_kind!r}")
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = dim // n_heads
        q_width, kv_width = n_heads * self.head_dim, n_kv_heads * self.head_dim
        self.splits = (q_width, kv_width, kv_width)
        self.wqkv = RowBlockLinear(dim, self.splits, bias=False)
        self.per_head_norm = qk_norm and qk_norm_kind == "head_rms"
        if self.per_head_norm:
            self.q_norm = RMSNorm(self.head_dim, eps=qk_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=qk_norm_eps)
        else:
            self.q_norm = nn.LayerNorm(q_width) if qk_norm else nn.Identity()
            self.k_norm = nn.LayerNorm(kv_width) if qk_norm else nn.Identity()
        self.has_context = context_dim is not None
        if self.has_context:
            self.wkv_y = RowBlockLinear(context_dim, self.splits[1:], bias=False)
            self.ky_norm = nn.LayerNorm(kv_width) if qk_norm else nn.Identity()
            self.gate = nn.Parameter(torch.zeros(n_heads))
        self.separate_cross_query = self.has_context and separate_cross_query
        if self.separate_cross_query:
            self.wq_y = Linear(dim, q_width, bias=False)
            self.q_y_norm = nn.LayerNorm(q_width) if qk_norm else nn.Identity()
        self.wo = Linear(q_width, dim, bias=False)

    def forward(self, x: Tensor, ctx: ForwardContext, y: Tensor | None = None) -> Tensor:
        """x (B, L, dim); ``ctx`` the stream's context: ``key_mask`` (B, 1, 1, L) or None, ``cos``/``sin``
        (B, L, head_dim/2) or None, ``prop`` (B,) or None, ``y_mask`` (B, 1, 1, Lc) or None, ``layer_drop``
        (pooled keys and values, :mod:`.context_drop`) or None; y (B, Lc, context_dim) the caption features
        already RMS-normalised by the block, or None (no cross-attention)."""
        b, n, _ = x.shape
        hd = self.head_dim
        cos, sin, prop, key_mask = ctx.cos, ctx.sin, ctx.prop, ctx.key_mask
        q, k, v = row_blocks(self.wqkv, x, self.splits)
        lora = ctx.lora  # the running task's low-rank updates (train.composition: [task_lora]), or None
        if lora is not None:
            dq, dk, dv = lora["wqkv"](x).split(self.splits, dim=-1)
            q, k, v = q + dq, k + dk, v + dv
        if self.per_head_norm:
            q = self.q_norm(q.view(b, n, self.n_heads, hd))
            k = self.k_norm(k.view(b, n, self.n_kv_heads, hd))
        else:
            q = self.q_norm(q).view(b, n, self.n_heads, hd)
            k = self.k_norm(k).view(b, n, self.n_kv_heads, hd)
        v = v.view(b, n, self.n_kv_heads, hd)
        gqa = self.n_kv_heads != self.n_heads
        if ctx.layer_drop is not None:  # keys and values pooled before their rotation; queries at full size
            q = apply_rope(q, cos, sin).transpose(1, 2) if cos is not None else q.transpose(1, 2)
            q_self = q if prop is None else q * prop.to(q.dtype)[:, None, None, None]
            out = ctx.layer_drop.attend(q_self, k, v, cos, sin, key_mask, gqa)
        else:
            if cos is not None:
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, L, hd)
            q_self = q if prop is None else q * prop.to(q.dtype)[:, None, None, None]
            out = sdpa(q_self, k, v, attn_mask=key_mask, enable_gqa=gqa)
        if self.has_context and y is not None:
            if self.separate_cross_query:
                q = self.q_y_norm(self.wq_y(x)).view(b, n, self.n_heads, hd)
                q = (apply_rope(q, cos, sin) if cos is not None else q).transpose(1, 2)
            ky, vy = row_blocks(self.wkv_y, y, self.splits[1:])
            lc = y.shape[1]
            ky = self.ky_norm(ky).view(b, lc, self.n_kv_heads, hd).transpose(1, 2)
            vy = vy.view(b, lc, self.n_kv_heads, hd).transpose(1, 2)
            out_y = sdpa(q, ky, vy, attn_mask=ctx.y_mask, enable_gqa=gqa)
            out = torch.addcmul(out, torch.tanh(self.gate).to(out.dtype)[None, :, None, None], out_y)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.wo(out) if lora is None else self.wo(out) + lora["wo"](out)

"""One Next-DiT block: sandwich RMSNorms, scale-only modulation, tanh gates, SwiGLU.

    [s_a, g_a, s_f, g_f] = Linear(SiLU(c)).chunk(4)                       (zero-initialised)
    h   = x + tanh(g_a) * RMSNorm_a2(Attention(RMSNorm_a1(x) * (1 + s_a), RMSNorm_y(y)))
    out = h + tanh(g_f) * RMSNorm_f2(FFN(RMSNorm_f1(h) * (1 + s_f)))
    FFN(x) = w2(silu(w1 x) * w3 x)                                        (w1 | w3 stored as one parameter)

The FFN's products (and, in no-grad mode, its SiLU and product, fused into them) run through oneDNN on
CPU, with a hand-written backward: :func:`lumina_core.model.linear.swiglu_hidden` while ``w13`` is bare
(:func:`~lumina_core.model.linear.is_bare`), ``silu(u) * v`` of the module call ``w13(x) = [u | v]`` when
it is hooked or wrapped (peft's LoRA...); ``w2`` is always called as a module.

Modulation and gates are folded into the norm weights (a (B, 1, dim) product computed once per block), so
each norm and its scaling are one :func:`~lumina_core.model.norm.scaled_rms_norm`:

    RMSNorm_a1(x) * (1 + s_a)          = rms(x) * (w_a1 * (1 + s_a))        rms(x) = x / sqrt(mean(x^2) + eps)
    x + tanh(g_a) * RMSNorm_a2(a)      = x + rms(a) * (w_a2 * tanh(g_a))
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lumina_core.model.attention import Attention
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context_drop import LayerDrop
from lumina_core.model.family import TrunkBlock
from lumina_core.model.linear import Linear, is_bare, swiglu_hidden
from lumina_core.model.norm import RMSNorm


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.w13 = Linear(dim, 2 * hidden, bias=False)  # rows: [w1; w3]
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if is_bare(self.w13, Linear) and self.w13.bias is None:
            h = swiglu_hidden(x, self.w13.weight)  # fused oneDNN kernels on CPU: lumina_core/model/linear.py
        else:
            u, v = self.w13(x).chunk(2, dim=-1)
            h = F.silu(u) * v
        return self.w2(h)


class NextDiTBlock(TrunkBlock):
    def __init__(self, cfg: NextDiTConfig) -> None:
        super().__init__()
        dim, eps = cfg.dim, cfg.norm_eps
        self.attention = Attention(
            dim, cfg.n_heads, cfg.n_kv_heads, cfg.context_dim, cfg.qk_norm, cfg.separate_cross_query
        )
        self.feed_forward = SwiGLU(dim, cfg.ffn_hidden)
        self.attention_norm1 = RMSNorm(dim, eps=eps)
        self.attention_norm2 = RMSNorm(dim, eps=eps)
        self.ffn_norm1 = RMSNorm(dim, eps=eps)
        self.ffn_norm2 = RMSNorm(dim, eps=eps)
        if cfg.context_dim is not None:
            self.attention_y_norm = RMSNorm(cfg.context_dim, eps=eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, 4 * dim))

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        key_mask: Tensor | None,
        cos: Tensor | None,
        sin: Tensor | None,
        prop: Tensor | None,
        y: Tensor | None,
        y_mask: Tensor | None,
        drop: LayerDrop | None = None,
    ) -> Tensor:
        scale_a, gate_a, scale_f, gate_f = self.adaLN_modulation(c)[:, None].chunk(4, dim=-1)  # (B, 1, dim)
        y_n = self.attention_y_norm(y) if y is not None else None
        a = self.attention(self.attention_norm1(x, 1 + scale_a), key_mask, cos, sin, prop, y_n, y_mask, drop)
        h = self.attention_norm2(a, gate_a.tanh()).add_(x)  # residuals added in place: one fresh tensor fewer
        f = self.feed_forward(self.ffn_norm1(h, 1 + scale_f))
        return self.ffn_norm2(f, gate_f.tanh()).add_(h)

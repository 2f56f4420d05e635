"""The trunk's block, shared by every family: sandwich RMSNorms, scale-only modulation, tanh gates, SwiGLU.

    [s_a, g_a, s_f, g_f] = Linear(act(c)).chunk(4)                        (zero-initialised; act = SiLU)
                           (+ the running task's Linear_k(act(c)) under train.composition: [task_modulation])
    h   = x + tanh(g_a) * RMSNorm_a2(Attention(RMSNorm_a1(x) * (1 + s_a), RMSNorm_y(y)))
    out = h + tanh(g_f) * RMSNorm_f2(FFN(RMSNorm_f1(h) * (1 + s_f)))
    FFN(x) = w2(silu(w1 x) * w3 x)                                        (w1 | w3 stored as one parameter)
    (under train.composition: [task_lora] each of wqkv, wo, w13, w2 gets the running task's s B_k A_k x added)

An unmodulated block (the unified family's context refiner: no ``adaLN_modulation``) has ``s = 0`` and
``tanh(g)`` replaced by 1; a block without caption features (``y``: the unified family, an unconditional
``next_dit``) has no cross-attention. What a block reads besides its input - the RoPE rotations, key masks,
proportional-attention factor, conditioning vector ``c``, caption features and context drop - comes in one
:class:`~lumina_core.model.context.ForwardContext` built once per forward. :class:`NextDiTBlock` (Lumina-Next)
and the unified family's ``UnifiedBlock`` differ only in what they are built from.

The FFN's hidden layer is its input projection's own fast route (:meth:`~lumina_core.model.linear.GatedLinear.gated`:
oneDNN products on CPU, and in no-grad mode its SiLU and product fused into them, with a hand-written
backward) while ``w13`` is bare, ``silu(u) * v`` of the module call ``w13(x) = [u | v]`` when it is hooked or
wrapped (peft's LoRA...); ``w2`` is always called as a module.

Modulation and gates are folded into the norm weights (a (B, 1, dim) product computed once per block), so
each norm and its scaling are one :func:`~lumina_core.model.norm.scaled_rms_norm`:

    RMSNorm_a1(x) * (1 + s_a)          = rms(x) * (w_a1 * (1 + s_a))        rms(x) = x / sqrt(mean(x^2) + eps)
    x + tanh(g_a) * RMSNorm_a2(a)      = x + rms(a) * (w_a2 * tanh(g_a))
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from lumina_core.model.attention import Attention
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context import ForwardContext
from lumina_core.model.family import TrunkBlock
from lumina_core.model.linear import GatedLinear, Linear, gated_hidden, is_bare, silu_gate
from lumina_core.model.norm import RMSNorm


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.w13 = GatedLinear(dim, hidden, bias=False)  # rows: [w1; w3]
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor, lora: Mapping[str, nn.Module] | None = None) -> Tensor:
        """``w2(silu(w1 x) * w3 x)``; with a task's low-rank updates ``lora`` (``train.composition:
        [task_lora]``) each projection's output gets its update added: ``w13 x + lora["w13"](x)``, then
        ``w2 g + lora["w2"](g)`` of the hidden layer ``g``."""
        if lora is None:
            return self.w2(gated_hidden(self.w13, x))
        hidden = silu_gate(self.w13(x) + lora["w13"](x))
        return self.w2(hidden) + lora["w2"](hidden)


class Block(TrunkBlock):
    """The shared block (see the module docstring). ``attention`` is the family's :class:`Attention`;
    ``modulation`` maps ``c`` (B, cond_dim) to ``4 dim`` (None: an unmodulated block); ``context_dim`` gives
    the block the caption features' RMSNorm (cross-attention), None for none."""

    def __init__(
        self,
        dim: int,
        attention: Attention,
        ffn_hidden: int,
        eps: float,
        modulation: nn.Module | None,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.feed_forward = SwiGLU(dim, ffn_hidden)
        self.attention_norm1 = RMSNorm(dim, eps=eps)
        self.attention_norm2 = RMSNorm(dim, eps=eps)
        self.ffn_norm1 = RMSNorm(dim, eps=eps)
        self.ffn_norm2 = RMSNorm(dim, eps=eps)
        if context_dim is not None:
            self.attention_y_norm = RMSNorm(context_dim, eps=eps)
        self.adaLN_modulation = modulation

    def forward(self, x: Tensor, ctx: ForwardContext) -> Tensor:
        """x (B, L, dim) -> (B, L, dim) under the stream's context ``ctx``."""
        scale_a = gate_a = scale_f = gate_f = None
        if self.adaLN_modulation is not None:
            m = self.adaLN_modulation(ctx.c)
            if ctx.modulation is not None:  # the running task's own modulation (train.composition)
                m = m + ctx.modulation(ctx.c)
            s_a, g_a, s_f, g_f = m[:, None].chunk(4, dim=-1)  # (B, 1, dim)
            scale_a, gate_a, scale_f, gate_f = 1 + s_a, g_a.tanh(), 1 + s_f, g_f.tanh()
        y = self.attention_y_norm(ctx.y) if ctx.y is not None else None
        a = self.attention(self.attention_norm1(x, scale_a), ctx, y)
        # residuals added in place: one fresh tensor fewer. Without autograd the sublayer outputs a and f are
        # normalised in place too, when no hook or wrapper of the sublayer or its output projection could
        # hold on to them
        h = self.attention_norm2(a, gate_a, inplace=_owned(self.attention, Attention, "wo")).add_(x)
        f = self.ffn_norm1(h, scale_f)
        f = self.feed_forward(f) if ctx.lora is None else self.feed_forward(f, ctx.lora)
        return self.ffn_norm2(f, gate_f, inplace=_owned(self.feed_forward, SwiGLU, "w2")).add_(h)


def _owned(sublayer: nn.Module, cls: type, projection: str) -> bool:
    """True when the output of ``sublayer`` (of class ``cls``, output projection ``projection``) is a fresh
    tensor that nothing else sees: both modules bare (:func:`~lumina_core.model.linear.is_bare`)."""
    return is_bare(sublayer, cls) and is_bare(getattr(sublayer, projection), Linear)


class NextDiTBlock(Block):
    """Lumina-Next's block: modulated, gated cross-attention to the caption (when ``cfg.context_dim``)."""

    def __init__(self, cfg: NextDiTConfig) -> None:
        attention = Attention(
            cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.context_dim, cfg.qk_norm, cfg.separate_cross_query
        )
        modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, 4 * cfg.dim))
        super().__init__(cfg.dim, attention, cfg.ffn_hidden, cfg.norm_eps, modulation, cfg.context_dim)

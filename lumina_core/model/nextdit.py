"""The ``next_dit`` trunk family (Lumina-Next): conditioning embedders and the stack of blocks.

The trunk works on embedded tokens (B, L, dim) and never knows the modality: the per-task input
projection, pad token, final layer and RoPE layout live in :class:`~lumina_core.model.adapter.ModalityAdapter`.
The caption enters every block by gated cross-attention, and pooled into ``c = t_emb + cap_emb``. One
attention stream: every block reads the same :class:`~lumina_core.model.context.ForwardContext` (its layer's
context drop aside), built once per forward by :meth:`NextDiT.context`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumina_core.model.adapter import spec_rope
from lumina_core.model.block import NextDiTBlock
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context import ForwardContext, key_mask
from lumina_core.model.context_drop import ContextDrop, drop_plan
from lumina_core.model.embedders import CaptionEmbedder, TimestepEmbedder
from lumina_core.model.family import Trunk
from lumina_core.model.masks import all_true
from lumina_core.model.rope import NDRope, RopeScaling
from lumina_core.model.task_parts import TaskBlockParts
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import TRUNK_FAMILIES


@TRUNK_FAMILIES.register("next_dit")
class NextDiT(Trunk):
    def __init__(self, cfg: NextDiTConfig) -> None:
        super().__init__(cfg)
        self.t_embedder = TimestepEmbedder(cfg.cond_dim, cfg.t_freq_dim)
        self.cap_embedder = CaptionEmbedder(cfg.context_dim, cfg.cond_dim) if cfg.context_dim else None
        self.layers = nn.ModuleList(NextDiTBlock(cfg) for _ in range(cfg.n_layers))

    def task_rope(self, spec: AdapterSpec) -> NDRope:
        """The task's own axes (``spec.axis_split``, ``spec.rope_layout``)."""
        return spec_rope(spec, self.config.head_dim)

    def encode_tokens(
        self,
        x: Tensor,
        mask: Tensor,
        positions: Tensor,
        t: Tensor,
        y: Tensor | None,
        y_mask: Tensor | None,
        rope: NDRope,
        scaling: RopeScaling | None,
        context_drop: ContextDrop | dict | None = None,
        c_shift: Tensor | None = None,
        task_parts: TaskBlockParts | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The batch's forward context (RoPE tables, key masks, conditioning vector, caption features, the
        context-drop plan), then the blocks. x (B, L, dim) embedded tokens, mask (B, L) bool (False: padding,
        never a key), positions (B, L, A), t (B,), y (B, Lc, context_dim) / y_mask (B, Lc) or None, c_shift:
        (cond_dim,) added to the conditioning vector (a task embedding) or None, task_parts: the task's
        own modulation and low-rank updates of the blocks
        (:meth:`~lumina_core.model.family.Trunk.run_blocks`) or None.
        Returns (hidden (B, L, dim), c (B, cond_dim))."""
        ctx = self.context(x, mask, positions, t, y, y_mask, rope, scaling, context_drop, c_shift)
        return self.run_blocks(self.layers, x, ctx, task_parts), ctx.c

    def context(
        self,
        x: Tensor,
        mask: Tensor,
        positions: Tensor,
        t: Tensor,
        y: Tensor | None,
        y_mask: Tensor | None,
        rope: NDRope,
        scaling: RopeScaling | None,
        context_drop: ContextDrop | dict | None = None,
        c_shift: Tensor | None = None,
    ) -> ForwardContext:
        """What every block reads, computed once: see :class:`~lumina_core.model.context.ForwardContext`."""
        if self.cap_embedder is None:
            y = y_mask = None
        if y is not None:
            if y.shape[-1] != self.config.context_dim:
                raise ValueError(
                    f"condition context must have width context_dim={self.config.context_dim}; got {y.shape[-1]}"
                )
            if y_mask is None:
                y_mask = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device)
            y = y.to(x.dtype)
        c = self.condition(t, y, y_mask, c_shift)
        y_attn_mask = None
        if y is not None and not all_true(y_mask):
            # a sample without any valid caption token attends to all of them (no NaN from an empty softmax)
            y_attn_mask = (y_mask | ~y_mask.any(-1, keepdim=True))[:, None, None, :]
        cos, sin, prop = rope(positions, mask, t, scaling)
        drop = None
        if context_drop is not None:
            drop = drop_plan(
                ContextDrop.build(context_drop),
                positions,
                mask,
                t,
                len(self.layers),
                lambda pos: rope.key_tables(pos, positions, mask, t, scaling),
            )
        return ForwardContext(key_mask(mask), cos, sin, prop, c, y, y_attn_mask, drop)

    def condition(
        self, t: Tensor, y: Tensor | None, y_mask: Tensor | None, c_shift: Tensor | None = None
    ) -> Tensor:
        """(B, cond_dim) conditioning vector ``c = t_emb + cap_emb`` (no caption: ``t_emb``), plus ``c_shift``
        ((cond_dim,), e.g. a task embedding) when given."""
        c = self.t_embedder(t)
        if y is not None and self.cap_embedder is not None:
            c = c + self.cap_embedder(y, y_mask)
        if c_shift is not None:
            c = c + c_shift.to(c.dtype)
        return c

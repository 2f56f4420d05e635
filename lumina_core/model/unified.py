"""The ``unified`` trunk family: Unified Next-DiT, the trunk of Lumina-Image 2.0 (Z-Image follows its design).

No cross-attention: the caption's tokens and the task's (noisy) tokens meet in one self-attention sequence.

    c    = t_emb(t)                                   modulation from the flow time alone (no pooled caption)
    cap  = Linear(RMSNorm(y))                         caption features -> dim            (``cap_embedder``)
    cap  = context_refiner(cap)                       blocks without modulation; caption mask; caption RoPE
    x    = noise_refiner(x, c)                        time-modulated blocks; the task's mask and RoPE
    h_i  = [valid caption tokens of i | task tokens of i]   caption padding removed, the batch right-padded to
                                                      its longest joint sequence (padding masked as keys)
    h    = layers(h, c)                               joint self-attention blocks
    out  = h at the task tokens                       what the task's final layer reads

Block (sandwich RMSNorms, tanh gates, SwiGLU, grouped-query attention with a per-head QK-RMSNorm):

    [s_a, g_a, s_f, g_f] = Linear(SiLU(c)).chunk(4)                        (zero-initialised)
    h   = x + tanh(g_a) * RMSNorm_a2(Attention(RMSNorm_a1(x) * (1 + s_a)))
    out = h + tanh(g_f) * RMSNorm_f2(FFN(RMSNorm_f1(h) * (1 + s_f)))
    unmodulated blocks (context refiner): s = 0 and tanh(g) replaced by 1.
    FFN hidden width: multiple_of * ceil(4 dim [* ffn_dim_multiplier] / multiple_of)          (2304 -> 9216)

RoPE: one caption axis in front of the task's axes. Caption token i sits at (i, 0, ..., 0); every task token at
(n, p_1, ..., p_A) with n the sample's number of valid caption tokens and p its position on the task's axes.
The caption axis owns ``caption_rope_fraction`` of each head's rotation pairs (released: 16 of 48), the task's
axes share the rest in their ``axis_split`` ratios. A task without axes (point clouds) still gets the caption
axis; a task without captions (unconditional) is the task tokens alone at (0, p); a class-conditioned task's
class embedding is a caption of one token.

The blocks, attention, SwiGLU, norms and RoPE are the ``next_dit`` family's modules (:class:`~.block.Block`);
what every block of one attention stream reads (key mask, rotations, proportional-attention factor,
conditioning vector) is built once per forward into a :class:`~lumina_core.model.context.ForwardContext`: one
for each refiner and one for the joint layers.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumina_core.model.attention import Attention
from lumina_core.model.block import Block
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context import ForwardContext, key_mask
from lumina_core.model.embedders import TimestepEmbedder
from lumina_core.model.family import Trunk
from lumina_core.model.norm import RMSNorm
from lumina_core.model.rope import NDRope, RopeScaling, sample_extent
from lumina_core.model.task_parts import TaskBlockParts
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import TRUNK_FAMILIES

#: Z-Image pads the task tokens and the caption each to a multiple of this many tokens (learned pad tokens)
Z_IMAGE_MULTIPLE = 32
#: Z-Image's time scale (``t_emb(1000 t)``) and its time MLP's hidden width
Z_IMAGE_T_SCALE, Z_IMAGE_T_HIDDEN = 1000.0, 1024


def unified_ffn_hidden(cfg: NextDiTConfig) -> int:
    """SwiGLU hidden width of the unified family: ``multiple_of * ceil(4 dim [* ffn_dim_multiplier] / multiple_of)``
    (Lumina-Image 2.0), ``int(dim / 3 * 8)`` for the ``z_image`` variant."""
    if cfg.unified_variant == "z_image":
        return int(cfg.dim / 3 * 8)
    hidden = 4 * cfg.dim
    if cfg.ffn_dim_multiplier is not None:
        hidden = int(cfg.ffn_dim_multiplier * hidden)
    return cfg.multiple_of * math.ceil(hidden / cfg.multiple_of)


def caption_axis_pairs(head_dim: int, fraction: float, axis_split: tuple[int, ...]) -> tuple[int, ...]:
    """Rotation pairs per axis, caption axis first: ``round(P * fraction)`` pairs for the caption (P = head_dim / 2),
    the rest shared by the task's axes in the ratios of ``axis_split`` (rounded down; the remainder goes to the
    caption axis). ValueError when an axis would get no pair."""
    p = head_dim // 2
    n_task_axes = len(axis_split)
    caption = min(max(1, round(p * fraction)), p - n_task_axes)
    rest = p - caption
    total = sum(int(s) for s in axis_split)
    task = [rest * int(s) // total for s in axis_split] if axis_split else []
    caption += rest - sum(task)
    if head_dim % 2 or caption < 1 or any(n < 1 for n in task):
        raise ValueError(
            f"a head of {head_dim} dims cannot hold a caption RoPE axis plus {n_task_axes} task axes split "
            f"{tuple(axis_split)}: every axis needs at least one rotation pair; use wider heads (dim / n_heads)"
        )
    return (caption, *task)


class CaptionAxisRope(NDRope):
    """RoPE tables with the caption axis in front of a task's axes (``pairs[0]`` on the caption axis).

    Scaling for positions beyond the training extent concerns the task's axes only: the caption axis is never
    scaled (its scale factor is 1; an explicit ``RopeScaling.scale`` gives one factor per task axis, or one for
    all), the ``area`` scale and proportional attention read the task's extents and tokens.
    """

    #: nominal training extent of the caption axis (positions 0..n): never reached by a caption, so never scaled
    CAPTION_EXTENT = 4096.0

    def __init__(self, head_dim: int, pairs: tuple[int, ...], layout: str, theta: float, task_extent=None) -> None:
        extent = None if task_extent is None else (self.CAPTION_EXTENT, *task_extent)
        super().__init__(head_dim, (), layout, theta, extent, pairs=pairs)
        self.task_extent = None if task_extent is None else tuple(float(e) for e in task_extent)

    def axis_scale(self, positions: Tensor, mask: Tensor, scaling: RopeScaling) -> Tensor:
        b, task_axes = positions.shape[0], self.num_axes - 1
        if isinstance(scaling.scale, (tuple, list)) and len(scaling.scale) == task_axes:
            scaling = dataclasses.replace(scaling, scale=(1.0, *scaling.scale))
        if scaling.scale is None and scaling.kind != "none" and scaling.scale_mode == "area" and self.task_extent:
            train = torch.tensor(self.task_extent, dtype=torch.float32, device=positions.device)
            extent = sample_extent(positions[..., 1:], mask)
            s = torch.sqrt(extent.prod(-1, keepdim=True) / train.prod()).expand(b, task_axes).clamp(min=1.0)
            return torch.cat([s.new_ones(b, 1), s], -1)
        s = super().axis_scale(positions, mask, scaling).clone()
        s[:, 0] = 1.0
        return s

    def proportional_factor(self, mask: Tensor, scaling: RopeScaling) -> Tensor | None:
        """``sqrt(log N / log N_train)`` over the task's tokens (``mask``) and the task's training extent."""
        if not scaling.proportional_attention or scaling.train_tokens is not None or not self.task_extent:
            return super().proportional_factor(mask, scaling)
        return super().proportional_factor(mask, dataclasses.replace(scaling, train_tokens=math.prod(self.task_extent)))


class UnifiedBlock(Block):
    """One block of the unified family: modulated (noise refiner, joint layers) or not (context refiner); no
    cross-attention; grouped-query attention with a per-head QK-RMSNorm."""

    def __init__(self, cfg: NextDiTConfig, modulated: bool = True) -> None:
        qk_eps = cfg.norm_eps if cfg.qk_norm_eps is None else cfg.qk_norm_eps
        attention = Attention(
            cfg.dim, cfg.n_heads, cfg.n_kv_heads, None, cfg.qk_norm, qk_norm_kind="head_rms", qk_norm_eps=qk_eps
        )
        act = nn.Identity() if cfg.unified_variant == "z_image" else nn.SiLU()  # Z-Image: Linear(t_emb) alone
        modulation = nn.Sequential(act, nn.Linear(cfg.cond_dim, 4 * cfg.dim)) if modulated else None
        super().__init__(cfg.dim, attention, unified_ffn_hidden(cfg), cfg.norm_eps, modulation)


@TRUNK_FAMILIES.register("unified")
class UnifiedNextDiT(Trunk):
    """Unified Next-DiT (see the module docstring). State-dict names follow the original release where they can:
    ``t_embedder.mlp``, ``cap_embedder``, ``context_refiner.N``, ``noise_refiner.N``, ``layers.N``."""

    def __init__(self, cfg: NextDiTConfig) -> None:
        super().__init__(cfg)
        self.z_image = cfg.unified_variant == "z_image"
        self.t_scale = Z_IMAGE_T_SCALE if self.z_image else 1.0
        self.t_embedder = TimestepEmbedder(cfg.cond_dim, cfg.t_freq_dim, Z_IMAGE_T_HIDDEN if self.z_image else None)
        if self.z_image:  # fill the task tokens and the caption up to a multiple of 32
            self.x_pad_token = nn.Parameter(torch.zeros(1, cfg.dim))
            self.cap_pad_token = nn.Parameter(torch.zeros(1, cfg.dim))
        self.cap_embedder = None
        self.context_refiner = nn.ModuleList()
        if cfg.context_dim:
            self.cap_embedder = nn.Sequential(
                RMSNorm(cfg.context_dim, eps=cfg.norm_eps), nn.Linear(cfg.context_dim, cfg.dim)
            )
            self.context_refiner.extend(UnifiedBlock(cfg, modulated=False) for _ in range(cfg.n_refiner_layers))
        self.noise_refiner = nn.ModuleList(UnifiedBlock(cfg) for _ in range(cfg.n_refiner_layers))
        self.layers = nn.ModuleList(UnifiedBlock(cfg) for _ in range(cfg.n_layers))

    def task_rope(self, spec: AdapterSpec) -> CaptionAxisRope:
        """The caption axis, then the task's axes (layout and base of the task's spec)."""
        cfg = self.config
        pairs = caption_axis_pairs(cfg.head_dim, cfg.caption_rope_fraction, tuple(spec.axis_split[: spec.num_axes]))
        extent = spec.train_extent if spec.num_axes else None
        return CaptionAxisRope(cfg.head_dim, pairs, spec.rope_layout, spec.rope_theta, extent)

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
        context_drop: object | None = None,
        c_shift: Tensor | None = None,
        task_parts: TaskBlockParts | None = None,
    ) -> tuple[Tensor, Tensor]:
        if context_drop is not None:
            raise ValueError(
                "context_drop (pooled keys and values of grid tokens) is a feature of the next_dit family; the "
                "unified family attends to every token: leave sampling.context_drop unset with model.family=unified"
            )
        b, n_tok, dim = x.shape
        scaling = scaling or RopeScaling()
        c = self.t_embedder(t * self.t_scale)
        if c_shift is not None:  # a task embedding (train.composition: [task_embedding]): the modulation's input
            c = c + c_shift.to(c.dtype)
        dev = x.device
        if self.cap_embedder is None or (y is not None and y.shape[1] == 0):
            y = None  # no caption branch, or a condition of no tokens: the task tokens alone
        if y is not None:
            if y.shape[-1] != self.config.context_dim:
                raise ValueError(
                    f"condition context must have width context_dim={self.config.context_dim}; got {y.shape[-1]}"
                )
            if y_mask is None:
                y_mask = torch.ones(y.shape[:2], dtype=torch.bool, device=dev)
            # valid caption tokens first, in their order (right padding is already in that order)
            order = torch.argsort((~y_mask).to(torch.uint8), dim=1, stable=True)
            y = y.gather(1, order[..., None].expand_as(y))
            n_cap = y_mask.sum(1)
        else:
            n_cap = torch.zeros(b, dtype=torch.long, device=dev)
        if self.z_image:
            return self._encode_z_image(
                x, mask, positions, t, y, n_cap, rope, scaling, c, task_parts
            )
        lc = 0 if y is None else y.shape[1]

        # positions on (caption axis, task axes...): caption token i at (i, 0...), task tokens at (n_cap, p)
        x_pos = torch.cat([n_cap.float()[:, None, None].expand(b, n_tok, 1), positions.float()], dim=-1)
        if y is None:
            joint_pos, joint_mask, src = x_pos, mask, None
        else:
            cap_pos = torch.zeros(b, lc, x_pos.shape[-1], device=dev)
            cap_pos[..., 0] = torch.arange(lc, device=dev, dtype=torch.float32)
            span = int(n_cap.max()) + n_tok
            j = torch.arange(span, device=dev)[None]
            rel = j - n_cap[:, None]
            in_cap, in_x = j < n_cap[:, None], (rel >= 0) & (rel < n_tok)
            src = torch.where(in_cap, j, torch.where(in_x, lc + rel, 0))  # (B, J) index into [caption | task]
            joint_mask = in_cap | (in_x & mask.gather(1, rel.clamp(0, n_tok - 1)))
            joint_pos = torch.cat([cap_pos, x_pos], 1).gather(1, src[..., None].expand(-1, -1, x_pos.shape[-1]))
        freqs = rope.frequencies(x_pos, mask, t, scaling)  # scaled (if at all) by the task tokens' extent

        x = self.run_blocks(
            self.noise_refiner,
            x,
            ForwardContext(key_mask(mask), *rope.tables(x_pos, freqs), rope.proportional_factor(mask, scaling), c),
            task_parts,
        )
        if y is None:
            h = x
        else:
            valid = torch.arange(lc, device=dev)[None] < n_cap[:, None]
            cap = self.cap_embedder(y.to(x.dtype))
            # a sample without any caption token lets its (unused) caption rows attend to all: no empty softmax
            cap_keys = key_mask(valid | ~valid.any(-1, keepdim=True))
            cap_ctx = ForwardContext(cap_keys, *rope.tables(cap_pos, freqs))
            cap = self.run_blocks(self.context_refiner, cap, cap_ctx, task_parts)
            h = torch.cat([cap, x], 1).gather(1, src[..., None].expand(-1, -1, dim))
        joint = ForwardContext(
            key_mask(joint_mask), *rope.tables(joint_pos, freqs), rope.proportional_factor(mask, scaling), c
        )
        h = self.run_blocks(self.layers, h, joint, task_parts)
        if y is not None:
            at = n_cap[:, None] + torch.arange(n_tok, device=dev)[None]  # the task tokens' joint positions
            h = h.gather(1, at[..., None].expand(-1, -1, dim))
        return h, c

    def _encode_z_image(
        self,
        x: Tensor,
        mask: Tensor,
        positions: Tensor,
        t: Tensor,
        y: Tensor | None,
        n_cap: Tensor,
        rope: CaptionAxisRope,
        scaling: RopeScaling,
        c: Tensor,
        task_parts: TaskBlockParts | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Z-Image's sequence: per sample ``[task tokens | caption]``, each filled up to a multiple of 32 with a
        learned pad token that takes part in attention (only the batch's padding is masked). Caption row j
        (pads included) sits at (1 + j, 0...); a task token at (c + 1, p) with c the filled caption length; the
        task's pad rows at (0, 0...). The task tokens must be right-padded (the real ones first)."""
        b, n_tok, dim = x.shape
        dev, mult = x.device, Z_IMAGE_MULTIPLE
        m = mask.sum(1)
        x_len, c_len = m + (-m) % mult, n_cap + (-n_cap) % mult
        lx = int(x_len.max())
        j = torch.arange(lx, device=dev)[None]
        real, filler = j < m[:, None], (j >= m[:, None]) & (j < x_len[:, None])
        grow = (0, 0, 0, max(0, lx - n_tok))
        xs = torch.where(filler[..., None], self.x_pad_token.to(x.dtype), F.pad(x, grow)[:, :lx])
        task_pos = F.pad(positions.float(), grow)[:, :lx]
        x_pos = torch.cat([(c_len.float() + 1)[:, None, None].expand(b, lx, 1), task_pos], -1)
        x_pos = torch.where(real[..., None], x_pos, 0.0)
        freqs = rope.frequencies(x_pos, real, t, scaling)
        prop = rope.proportional_factor(mask, scaling)
        x_keys = key_mask(j < x_len[:, None])
        x_ctx = ForwardContext(x_keys, *rope.tables(x_pos, freqs), prop, c)
        xs = self.run_blocks(self.noise_refiner, xs, x_ctx, task_parts)
        lc = int(c_len.max()) if y is not None else 0
        if lc == 0:
            h, pos, joint_mask = xs, x_pos, j < x_len[:, None]
        else:
            jc = torch.arange(lc, device=dev)[None]
            cap = self.cap_embedder(F.pad(y, (0, 0, 0, max(0, lc - y.shape[1])))[:, :lc].to(x.dtype))
            cap_filler = (jc >= n_cap[:, None]) & (jc < c_len[:, None])
            cap = torch.where(cap_filler[..., None], self.cap_pad_token.to(cap.dtype), cap)
            cap_pos = torch.zeros(b, lc, x_pos.shape[-1], device=dev)
            cap_pos[..., 0] = (jc + 1).float()
            cap_rows = jc < c_len[:, None]
            cap_keys = key_mask(cap_rows | ~cap_rows.any(-1, keepdim=True))
            cap_ctx = ForwardContext(cap_keys, *rope.tables(cap_pos, freqs))
            cap = self.run_blocks(self.context_refiner, cap, cap_ctx, task_parts)
            span = int((x_len + c_len).max())
            jj = torch.arange(span, device=dev)[None]
            rel = jj - x_len[:, None]
            in_x, in_c = jj < x_len[:, None], (rel >= 0) & (rel < c_len[:, None])
            src = torch.where(in_x, jj, torch.where(in_c, lx + rel, 0))  # index into [task stream | caption]
            h = torch.cat([xs, cap], 1).gather(1, src[..., None].expand(-1, -1, dim))
            pos = torch.cat([x_pos, cap_pos], 1).gather(1, src[..., None].expand(-1, -1, x_pos.shape[-1]))
            joint_mask = in_x | in_c
        joint = ForwardContext(key_mask(joint_mask), *rope.tables(pos, freqs), prop, c)
        h = self.run_blocks(self.layers, h, joint, task_parts)
        at = torch.arange(n_tok, device=dev).clamp(max=h.shape[1] - 1)[None].expand(b, -1)  # task rows come first
        return h.gather(1, at[..., None].expand(-1, -1, dim)), c

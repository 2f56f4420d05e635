"""Next-DiT trunk configuration and the named size presets.

The trunk's widths follow the released model:

* conditioning width ``C = min(dim, 1024)`` (timestep + pooled caption embedding);
* head dimension ``dim / n_heads``; ``n_kv_heads`` key/value heads shared by groups of query heads (GQA);
* SwiGLU hidden width ``multiple_of * ceil(h / multiple_of)`` with ``h = int(8 dim / 3)`` (times
  ``ffn_dim_multiplier`` when given) - 2304 gives 6144.

``PRESETS`` is the one size table; ``LuminaModel.count_parameters`` computes a preset's size on the meta device,
so even the released 2B configuration costs nothing to count.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class NextDiTConfig:
    """Hyper-parameters of the shared Next-DiT trunk (per-task parts live in :class:`AdapterSpec`).

    Attributes:
        dim: model width.
        n_layers: number of Next-DiT blocks.
        n_heads: query heads.
        n_kv_heads: key/value heads (None: same as ``n_heads``); must divide ``n_heads``.
        context_dim: width of the caption / condition features; None builds no caption branch.
        multiple_of: the SwiGLU hidden width is rounded up to a multiple of this.
        ffn_dim_multiplier: optional factor on the SwiGLU hidden width before rounding.
        norm_eps: epsilon of every RMSNorm.
        qk_norm: LayerNorm on the projected queries and keys (released: True).
        grad_checkpointing: recompute each block in the backward pass to save memory.
        t_freq_dim: width of the sinusoidal timestep features (released: 256).
        max_cond_dim: the conditioning width is ``min(dim, max_cond_dim)`` (released: 1024).
        separate_cross_query: the cross-attention has its own query projection and query norm instead of
            reusing the self-attention's (released: False; diffusers models whose ``attn2.to_q`` differs
            from ``attn1.to_q``, e.g. after fine-tuning in diffusers, need True).
        family: the trunk family (:data:`lumina_core.registry.TRUNK_FAMILIES`): ``"next_dit"`` (Lumina-Next,
            cross-attention to the caption) or ``"unified"`` (Lumina-Image 2.0: caption and noisy tokens in
            one self-attention sequence, :mod:`lumina_core.model.unified`).
        n_refiner_layers: unified family: context-refiner and noise-refiner blocks (released: 2 each).
        caption_rope_fraction: unified family: share of each head's rotation pairs on the caption axis
            (released: 1/3, i.e. 32 of 96 dims); the task's axes share the rest in their ``axis_split`` ratios.
        qk_norm_eps: unified family: epsilon of the per-head query/key RMSNorm (None: ``norm_eps``; diffusers
            uses 1e-5, the original Lumina-Image 2.0 code 1e-6).
        unified_variant: unified family: ``"lumina2"`` (Lumina-Image 2.0: ``[caption | tokens]``) or
            ``"z_image"`` (Z-Image's sequence: ``[tokens | caption]``, each padded to a multiple of 32 with
            learned pad tokens, positions from 1, ``t`` scaled by 1000, no SiLU before the block modulation,
            SwiGLU width ``int(8 dim / 3)``; see :mod:`lumina_core.model.unified`).
    """

    dim: int = 384
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None
    context_dim: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    qk_norm: bool = True
    grad_checkpointing: bool = False
    t_freq_dim: int = 256
    max_cond_dim: int = 1024
    separate_cross_query: bool = False
    family: str = "next_dit"
    n_refiner_layers: int = 2
    caption_rope_fraction: float = 1 / 3
    qk_norm_eps: float | None = None
    unified_variant: str = "lumina2"

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        problems = []
        if self.n_refiner_layers < 0:
            problems.append(f"n_refiner_layers must be >= 0, got {self.n_refiner_layers}")
        if self.unified_variant not in ("lumina2", "z_image"):
            problems.append(f"unified_variant must be 'lumina2' or 'z_image', got {self.unified_variant!r}")
        if not 0 < self.caption_rope_fraction < 1:
            problems.append(f"caption_rope_fraction must lie strictly between 0 and 1, got {self.caption_rope_fraction}")
        for name in ("dim", "n_layers", "n_heads", "n_kv_heads", "multiple_of", "t_freq_dim", "max_cond_dim"):
            if int(getattr(self, name)) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if not problems:
            if self.dim % self.n_heads:
                problems.append(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
            if self.n_heads % self.n_kv_heads:
                problems.append(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
            if self.t_freq_dim % 2:
                problems.append(f"t_freq_dim must be even, got {self.t_freq_dim}")
        if self.context_dim is not None and self.context_dim <= 0:
            problems.append(f"context_dim must be positive or None, got {self.context_dim}")
        from lumina_core.registry import TRUNK_FAMILIES, RegistryError  # stdlib-only module: no import cycle

        try:
            TRUNK_FAMILIES.get(self.family)
        except RegistryError:
            problems.append(f"unknown family {self.family!r}; known families: {', '.join(TRUNK_FAMILIES.names())}")
        if problems:
            raise ValueError("invalid NextDiTConfig: " + "; ".join(problems))

    # -- derived sizes -----------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def cond_dim(self) -> int:
        """Width of the conditioning vector ``c = t_emb + cap_emb``."""
        return min(self.dim, self.max_cond_dim)

    @property
    def ffn_hidden(self) -> int:
        """SwiGLU hidden width: ``multiple_of * ceil(int(8 dim / 3) [* ffn_dim_multiplier] / multiple_of)``."""
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * math.ceil(hidden / self.multiple_of)

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> NextDiTConfig:
        """A preset row of :data:`PRESETS` with ``overrides`` applied (None overrides are ignored)."""
        if name not in PRESETS:
            raise ValueError(f"unknown NextDiT preset {name!r}; known presets: {sorted(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown NextDiTConfig fields {unknown}; known fields: {sorted(known)}")
        values = dict(PRESETS[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NextDiTConfig:
        """Build from a mapping such as the recipe's ``model`` section (``preset`` picks a base row)."""
        values = dict(values)
        preset = values.pop("preset", None)
        if preset is not None:
            return cls.from_preset(preset, **values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown NextDiTConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The size table. ``2B`` is the released Lumina-Next text-to-image trunk (1.63 B parameters with its
#: image adapter: ``lumina_modalities.image.RELEASED_IMAGE_ADAPTER``); ``lumina2`` is Lumina-Image 2.0's
#: unified trunk (2,609,769,152 parameters with a 16-channel, patch-2 image adapter, not counting our pad token);
#: ``z_image`` is Z-Image's (6,154,908,736 likewise).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=128, n_layers=2, n_heads=4, n_kv_heads=2),
    "small": dict(dim=384, n_layers=6, n_heads=6, n_kv_heads=2),
    "base": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=4),
    "large": dict(dim=1024, n_layers=24, n_heads=16, n_kv_heads=8),
    "600M": dict(dim=1536, n_layers=20, n_heads=24, n_kv_heads=8),
    "2B": dict(dim=2304, n_layers=24, n_heads=32, n_kv_heads=8, context_dim=2048),
    # Lumina-Image 2.0 (unified family): 2,609,769,152 parameters with its 16-channel, patch-2 image adapter
    "lumina2": dict(family="unified", dim=2304, n_layers=26, n_heads=24, n_kv_heads=8, context_dim=2304),
    # Z-Image (unified family, z_image variant): 6,154,908,736 parameters with its 16-channel, patch-2 image
    # adapter (RoPE axes 32 / 48 / 48 of a 128-wide head, theta 256 on the adapter); caption width 2560 (Qwen3-4B)
    "z_image": dict(
        family="unified", unified_variant="z_image", dim=3840, n_layers=30, n_heads=30, n_kv_heads=30,
        context_dim=2560, caption_rope_fraction=0.25, qk_norm_eps=1e-5, max_cond_dim=256,
    ),
}

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

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        problems = []
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
#: image adapter: ``lumina_modalities.image.RELEASED_IMAGE_ADAPTER``).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=128, n_layers=2, n_heads=4, n_kv_heads=2),
    "small": dict(dim=384, n_layers=6, n_heads=6, n_kv_heads=2),
    "base": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=4),
    "large": dict(dim=1024, n_layers=24, n_heads=16, n_kv_heads=8),
    "600M": dict(dim=1536, n_layers=20, n_heads=24, n_kv_heads=8),
    "2B": dict(dim=2304, n_layers=24, n_heads=32, n_kv_heads=8, context_dim=2048),
}

"""Conditioning embedders of the trunk: flow time and pooled caption features.

    t_emb   = MLP([cos(t w_k), sin(t w_k)]),  w_k = exp(-ln(10000) k / (F/2)),  k < F/2  (F = 256, t in [0, 1])
    cap_emb = Linear(LayerNorm(masked mean of caption features))
    c       = t_emb + cap_emb        (width min(dim, 1024))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_features(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """(B, dim) sinusoidal features ``[cos(t w_k), sin(t w_k)]`` of the flow time itself (not 1000 t)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """``Linear(F, M) - SiLU - Linear(M, C)`` of the sinusoidal features; the hidden width ``M`` is ``C`` unless
    given (Z-Image: 1024 on a 256-wide conditioning)."""

    def __init__(self, cond_dim: int, freq_dim: int = 256, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        mid = hidden_dim or cond_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, mid), nn.SiLU(), nn.Linear(mid, cond_dim))

    def forward(self, t: Tensor) -> Tensor:
        feats = timestep_features(t, self.freq_dim)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class CaptionEmbedder(nn.Module):
    """Masked mean over valid caption tokens, then LayerNorm - Linear (zero-initialised)."""

    def __init__(self, context_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, cond_dim))

    def forward(self, y: Tensor, mask: Tensor) -> Tensor:
        m = mask.to(y.dtype)[..., None]  # (B, Lc, 1)
        pooled = (y * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.net(pooled)

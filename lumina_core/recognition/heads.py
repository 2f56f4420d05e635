"""Classifier heads on the trunk's hidden tokens (B, L, dim) with a padding mask (B, L).

* ``mean``: masked mean over the sample's real tokens,  ``z = sum_l m_l h_l / sum_l m_l``;
* ``cls``: a learnable class token reads the tokens through one class-attention layer (CaiT): its query
  attends over ``[cls; h]`` (padding excluded), ``z = cls + Attn(LN(cls), LN([cls; h]))``. The class token
  has no position, so it never needs a RoPE coordinate and sees every resolution the same way.

then ``logits = W LN(z) + b`` (``W`` zero-initialised: training starts from the uniform prediction).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

POOLS = ("mean", "cls")


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """(B, dim) mean of ``h`` (B, L, dim) over the positions where ``mask`` (B, L) is True."""
    m = mask.to(h.dtype)[..., None]  # (B, L, 1)
    count = m.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("masked_mean: a sample has no real tokens (mask is all False)")
    return (h * m).sum(dim=1) / count


def _attention_heads(dim: int) -> int:
    """The most heads of width >= 16 (up to 8) that divide ``dim``."""
    for n in (8, 4, 2):
        if dim % n == 0 and dim // n >= 16:
            return n
    return 1


class ClassifierHead(nn.Module):
    """Pool the hidden tokens (``pool``: "mean" or "cls") and map them to ``num_classes`` logits."""

    def __init__(self, dim: int, num_classes: int, pool: str = "mean") -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; got {pool!r}")
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes; got {num_classes}")
        self.pool = pool
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.norm_q = nn.LayerNorm(dim)
            self.norm_kv = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, _attention_heads(dim), batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def pooled(self, h: Tensor, mask: Tensor) -> Tensor:
        """(B, dim) summary of each sample's real tokens."""
        if self.pool == "mean":
            return masked_mean(h, mask)
        b = h.shape[0]
        cls = self.cls_token.expand(b, -1, -1).to(h.dtype)  # (B, 1, dim)
        kv = self.norm_kv(torch.cat([cls, h], dim=1))  # (B, 1 + L, dim)
        pad = torch.cat([mask.new_zeros(b, 1), ~mask], dim=1)  # True: ignored (padding)
        out, _ = self.attn(self.norm_q(cls), kv, kv, key_padding_mask=pad, need_weights=False)
        return (cls + out)[:, 0]

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        """(B, num_classes) logits."""
        return self.fc(self.norm(self.pooled(h, mask)))

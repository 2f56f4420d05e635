"""A tiny deterministic text conditioner for tests: no weights to load, yet captions really differ.

Each word of a caption maps to a fixed random vector (seeded by a stable hash of the word), so a caption
becomes ``(number of words, dim)`` context tokens; the empty caption (the null condition of classifier-free
guidance) becomes one zero token. Different captions give different features and padded batches of captions
of different lengths exercise the trunk's context mask - which is all a plugin's conformance test needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from lumina_core.conditioning.base import Conditioner, pad_features
from lumina_core.tokens import Condition


class HashTextConditioner(Conditioner):
    """Captions to per-word hashed random features of width ``dim`` (frozen, deterministic)."""

    kind = "text"
    trainable = False

    def __init__(self, dim: int = 32, max_words: int = 16) -> None:
        super().__init__(dim=dim, null_value="")
        self.max_words = max_words

    def _word(self, word: str) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little") % (2**63)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(self.dim, generator=gen)  # type: ignore[arg-type]

    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        feats = []
        for v in self._nulls_filled(values):
            if not isinstance(v, str):
                raise ValueError(f"HashTextConditioner expects captions (str); got {type(v).__name__}")
            words = v.lower().split()[: self.max_words]
            feats.append(torch.stack([self._word(w) for w in words]) if words else torch.zeros(1, self.dim))
        return pad_features(feats, device=device)  # (B, max words, dim), right-padded with a mask

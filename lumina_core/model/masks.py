"""Padding-mask helpers shared by the trunk and the task adapters (no model imports: no cycles)."""

from __future__ import annotations

import torch
from torch import Tensor


def all_true(mask: Tensor) -> bool:
    """True when no entry is masked, so attention (or the pad-token swap) can skip the mask. Under
    ``torch.compile`` this answers False without looking (a data-dependent branch would break the graph; the
    mask is then always applied)."""
    if torch.compiler.is_compiling():
        return False
    return bool(mask.all())

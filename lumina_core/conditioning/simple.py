"""The two conditioners with no pretrained weights: ``none`` (unconditional) and ``class`` (label table)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lumina_core.conditioning.base import Conditioner
from lumina_core.registry import CONDITIONERS
from lumina_core.tokens import Condition


@CONDITIONERS.register("none")
class NoneConditioner(Conditioner):
    """Unconditional: every batch encodes to ``Condition()`` (context None); ``dim`` is None."""

    kind = "none"
    trainable = False

    def __init__(self) -> None:
        super().__init__(dim=None, null_value=None)

    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        self._nulls_filled(values)  # still checks that a list came in
        return Condition()


@CONDITIONERS.register("class")
class ClassConditioner(Conditioner):
    """Class labels through a learned table ``nn.Embedding(num_classes + 1, dim)``.

    Row ``num_classes`` is the null class used by classifier-free guidance; labels ``0..num_classes-1`` are
    real classes. ``encode`` gives one context token per sample: context ``(B, 1, dim)``, mask all True.
    Initialisation: ``N(0, init_std^2)`` (0.02, as DiT's label table).
    """

    kind = "class"
    trainable = True

    def __init__(self, num_classes: int, dim: int = 256, init_std: float = 0.02) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"class conditioner needs num_classes >= 1 (an int); got {num_classes!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"class conditioner needs dim >= 1 (an int); got {dim!r}")
        super().__init__(dim=dim, null_value=num_classes)
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def labels(self, values: Sequence[Any]) -> torch.Tensor:
        """Validate raw labels (ints, integer tensors/arrays of one element, None for null) -> (B,) long."""
        out = []
        for i, v in enumerate(self._nulls_filled(values)):
            if isinstance(v, torch.Tensor):
                if v.numel() != 1 or v.is_floating_point() or v.dtype == torch.bool:
                    raise ValueError(
                        f"class label {i} must be one integer; got tensor {v.dtype} {tuple(v.shape)}"
                    )
                v = int(v.item())
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(
                    f"class label {i} must be an integer in [0, {self.num_classes}] "
                    f"({self.num_classes} is the null class); got {v!r} ({type(v).__name__})"
                )
            if not 0 <= int(v) <= self.num_classes:
                raise ValueError(
                    f"class label {i} = {int(v)} is out of range: expected 0..{self.num_classes - 1}, "
                    f"or {self.num_classes} for the null class"
                )
            out.append(int(v))
        return torch.tensor(out, dtype=torch.long, device=self.table.weight.device)

    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        labels = self.labels(values)
        context = self.table(labels).unsqueeze(1)  # (B, 1, dim)
        if device is not None:
            context = context.to(device)
        return Condition(context, torch.ones(context.shape[:2], dtype=torch.bool, device=context.device))

    def fingerprint(self) -> str:
        return f"class(num_classes={self.num_classes}, dim={self.dim})"

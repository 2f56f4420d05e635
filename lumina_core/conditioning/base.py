"""The conditioner contract, and classifier-free-guidance condition dropout.

A conditioner maps a batch of raw conditions (captions, class ids, nothing) to a
:class:`~lumina_core.tokens.Condition`: context tokens ``(B, Lc, dim)`` plus a ``(B, Lc)`` validity mask. The
trunk's ``context_dim`` equals ``conditioner.dim``.

Classifier-free guidance trains one network for both the conditional velocity ``v(x, t, c)`` and the
unconditional one ``v(x, t, null)`` by replacing each sample's raw condition by the conditioner's
``null_value`` with probability ``p`` (released: 0.1). Dropping happens on raw values, before encoding, so the
null condition goes through exactly the same encoder as at sampling time.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.tokens import Condition

#: Recognised values of ``Conditioner.kind``.
KINDS = ("text", "class", "none")


class Conditioner(nn.Module, abc.ABC):
    """Abstract base of every conditioner (an ``nn.Module`` so trainable ones train with the model); a
    subclass implements :meth:`encode`.

    Attributes:
        dim: width of the context tokens, or None for an unconditional model.
        kind: ``"text"``, ``"class"`` or ``"none"`` (plugins may define more).
        null_value: the raw value meaning "no condition": ``""`` for text, ``num_classes`` for class tables,
            None for unconditional models. ``None`` in a batch of raw values is read as ``null_value``.
        trainable: True when the conditioner's parameters train with the model (class tables); pretrained
            text encoders are frozen and hold no trainable state.
        padding_side: where context tokens are padded (``"right"`` or ``"left"``); caches re-pad this way.
        pad_to_multiple_of: context length is rounded up to a multiple of this (None: no rounding).
    """

    kind: str = "none"
    trainable: bool = False

    def __init__(self, dim: int | None, null_value: Any) -> None:
        super().__init__()
        self.dim = dim
        self.null_value = null_value
        self.padding_side = "right"
        self.pad_to_multiple_of: int | None = None

    @abc.abstractmethod
    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        """Encode a batch of raw conditions into context tokens ``(B, Lc, dim)`` and mask ``(B, Lc)``."""

    def forward(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        return self.encode(values, device=device)

    def drop(self, values: Sequence[Any], p: float, generator: torch.Generator | None = None) -> list[Any]:
        """:func:`drop_conditions` with this conditioner's ``null_value``."""
        return drop_conditions(values, p, self.null_value, generator)

    def fingerprint(self) -> str:
        """A string that changes whenever the features for the same raw value would change (for caches)."""
        return f"{type(self).__module__}.{type(self).__qualname__}(dim={self.dim})"

    def _nulls_filled(self, values: Sequence[Any]) -> list[Any]:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(
                f"{type(self).__name__}.encode expects a list of raw conditions (one per sample); "
                f"got {type(values).__name__}"
            )
        return [self.null_value if v is None else v for v in values]


def drop_conditions(
    values: Sequence[Any], p: float, null_value: Any, generator: torch.Generator | None = None
) -> list[Any]:
    """Replace each raw condition by ``null_value`` independently with probability ``p``.

    One Bernoulli draw per sample, ``drop_i = U_i < p`` with ``U_i ~ U[0, 1)`` from ``generator`` (CPU), so the
    same generator state gives the same drops. ``len(values)`` numbers are always drawn, whatever ``p``, so
    the generator stream does not depend on ``p``.
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"drop probability must be in [0, 1]; got {p}")
    values = list(values)
    if not values:
        return values
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"drop_conditions needs a CPU torch.Generator; got one on {generator.device}")
    drop: Tensor = torch.rand(len(values), generator=generator) < p
    return [null_value if d else v for v, d in zip(values, drop.tolist(), strict=True)]


def pad_features(
    features: Sequence[Tensor],
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
    device: torch.device | str | None = None,
) -> Condition:
    """Stack per-sample features ``(L_i, D)`` into a Condition, zero-padded on ``padding_side``.

    Padded context rows are zero and masked out; ``Lc = max L_i`` rounded up to ``pad_to_multiple_of``.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left'; got {padding_side!r}")
    if not features:
        raise ValueError("pad_features needs at least one sample")
    dims = {f.shape[-1] for f in features}
    if len(dims) != 1 or any(f.dim() != 2 for f in features):
        raise ValueError(
            f"features must all be (L_i, D) with one D; got {[tuple(f.shape) for f in features]}"
        )
    length = max(f.shape[0] for f in features)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    ref = features[0]
    device = ref.device if device is None else torch.device(device)
    context = torch.zeros(len(features), length, dims.pop(), dtype=ref.dtype, device=device)
    mask = torch.zeros(len(features), length, dtype=torch.bool, device=device)
    for i, f in enumerate(features):
        n = f.shape[0]
        sl = slice(0, n) if padding_side == "right" else slice(length - n, length)
        context[i, sl] = f.to(device)
        mask[i, sl] = True
    return Condition(context, mask)


def unpad_features(cond: Condition) -> list[Tensor]:
    """Per-sample valid context rows ``(L_i, D)`` of a Condition (inverse of :func:`pad_features`)."""
    if cond.context is None:
        raise ValueError("an unconditional Condition (context None) has no features to unpad")
    return [cond.context[i][cond.mask[i]] for i in range(cond.context.shape[0])]

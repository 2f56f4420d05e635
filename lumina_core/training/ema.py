"""Exponential moving average of the trainable weights.

After every optimiser step ``ema <- d_k ema + (1 - d_k) w`` with the warmed-up decay
``d_k = min(decay, (1 + k) / (10 + k))`` (k = optimiser steps so far), so that a short run's EMA is not
stuck at the initial weights; for long runs ``d_k = decay`` (released: 0.9999). Buffers are copied.

Sharded models (``train.strategy: fsdp``, :mod:`.sharding`): the EMA shards with the model. After the model
is sharded, :meth:`EMA.shard_like` cuts each shadow tensor exactly as its live parameter is cut (a ``DTensor``
with the same mesh and placements), so every rank averages only its own shard - the update is local, no
communication, and the EMA costs ``4P / N`` bytes per rank instead of ``4P``. (Gathering the weights every
step to average them whole on one rank would cost an all-gather of the full model per step and the full
``4P`` on that rank; Lightning's weight-averaging callback does neither, it does not support sharded models.)
Only saving needs the whole EMA: :meth:`EMA.full_state_dict` gathers it one tensor at a time (every rank
calls it, the writing rank keeps it), and a checkpoint holds it in the same flat form as an unsharded run's,
so ``load_run``, ``lumina sample`` and the interop exports read it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor


class EMA:
    """EMA of a flat ``{name: tensor}`` state (parameters and buffers of the trainable modules)."""

    def __init__(self, named: Mapping[str, Tensor], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1); got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in named.items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, named: Mapping[str, Tensor], step: int) -> None:
        d = self.decay_at(step)
        for k, v in named.items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.lerp_(v.detach().to(s.dtype), 1.0 - d)
            else:
                s.copy_(v.detach())

    def shard_like(self, named: Mapping[str, Tensor]) -> EMA:
        """Cut each whole shadow tensor into this rank's shard of the live tensor of the same name (see the
        module docstring); tensors that are not sharded are moved to the live tensor's device."""
        from lumina_core.training.sharding import is_sharded, shard_like

        self.shadow = {
            k: v if is_sharded(v) else shard_like(v.to(named[k].dtype), named[k])
            for k, v in self.shadow.items()
        }
        return self

    def full_state_dict(self, keep: bool = True) -> dict[str, Tensor]:
        """The whole EMA on the CPU, gathering sharded tensors (collective: every rank calls it; ranks with
        ``keep`` False get {})."""
        from lumina_core.training.sharding import gather_full

        return gather_full(self.shadow, keep)

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        missing, unexpected = set(self.shadow) - set(state), set(state) - set(self.shadow)
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the model: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        from lumina_core.training.sharding import is_sharded, shard_like

        for k, v in state.items():
            s = self.shadow[k]
            s.copy_(shard_like(v, s) if is_sharded(s) and not is_sharded(v) else v.to(s.device, s.dtype))

    @contextmanager
    def swapped_into(self, named: Mapping[str, Tensor]) -> Iterator[None]:
        """Temporarily copy the EMA weights into the live tensors; restore them exactly afterwards."""
        backup = {k: v.detach().clone() for k, v in named.items()}
        with torch.no_grad():
            for k, v in named.items():
                v.copy_(self.shadow[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in named.items():
                    v.copy_(backup[k])

"""Training-time samplers for the flow time ``t`` in [0, 1] (0 = noise, 1 = data).

Each subclasses :class:`TimeSampler`, is registered in :data:`lumina_core.registry.TIME_SAMPLERS` and is
called as ``sampler(n, generator=None, device=None) -> (n,)`` float32 tensor; recipes name one as
``time_sampler: {name: logit_normal, params: {m: 0, s: 1}}`` (the ``flow_matching`` objective's parameter).

* ``uniform``: ``t ~ U(0, 1)`` (released text-to-image runs).
* ``logit_normal(m, s)``: ``t = sigmoid(z)``, ``z ~ N(m, s^2)`` (released class-conditional runs); puts most
  samples at mid times.
* ``shifted(s)``: ``t = u / (u + s - s u)`` with ``u ~ U(0, 1)``: the same map as the ``shift`` sampling grid
  (:mod:`lumina_core.sampling.grids`); ``s > 1`` moves training time towards noise (small t), which is where
  high-resolution images need more training signal. In diffusers' ``sigma = 1 - t`` it reads
  ``sigma' = s sigma / (1 + (s - 1) sigma)``, the SD3 / Lumina "time shift".
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from lumina_core.registry import TIME_SAMPLERS


def shift_time(t: Tensor, s: float) -> Tensor:
    """``t / (t + s - s t)``: identity for ``s = 1``; ``s > 1`` pushes times towards 0 (noise)."""
    return t / (t + s - s * t)


class TimeSampler(abc.ABC):
    """Base class of training-time samplers: ``n`` times in [0, 1] drawn with ``generator``."""

    @abc.abstractmethod
    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """(n,) float32 times."""


@TIME_SAMPLERS.register("uniform")
class UniformTimeSampler(TimeSampler):
    """``t ~ U(0, 1)``."""

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        return torch.rand(n, generator=generator, device=_gen_device(generator, device)).to(device)


@TIME_SAMPLERS.register("logit_normal")
class LogitNormalTimeSampler(TimeSampler):
    """``t = sigmoid(m + s z)``, ``z ~ N(0, 1)``."""

    def __init__(self, m: float = 0.0, s: float = 1.0) -> None:
        if s <= 0:
            raise ValueError(f"logit_normal needs s > 0; got s={s}")
        self.m, self.s = float(m), float(s)

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        z = torch.randn(n, generator=generator, device=_gen_device(generator, device)).to(device)
        return torch.sigmoid(self.m + self.s * z)


@TIME_SAMPLERS.register("shifted")
class ShiftedTimeSampler(TimeSampler):
    """``t = u / (u + s - s u)``, ``u ~ U(0, 1)`` (the sampling grid's shift applied to uniform times)."""

    def __init__(self, s: float = 3.0) -> None:
        if s <= 0:
            raise ValueError(f"shifted needs s > 0; got s={s}")
        self.s = float(s)

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        u = torch.rand(n, generator=generator, device=_gen_device(generator, device)).to(device)
        return shift_time(u, self.s)


def _gen_device(generator: torch.Generator | None, device) -> torch.device | None:
    """Random numbers are drawn where the generator lives, then moved (keeps a CPU generator usable)."""
    return generator.device if generator is not None else device

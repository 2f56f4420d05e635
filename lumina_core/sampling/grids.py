"""Time grids for sampling: ``N + 1`` increasing times from 0 (noise) to 1 (data).

Registered in :data:`lumina_core.registry.TIME_GRIDS`; each entry subclasses :class:`TimeGrid`, whose instances
are called as ``grid(steps, device=None) -> (steps + 1,)`` float64 tensor. :func:`time_grid` builds one from a
recipe node (``{name: shift, params: {s: 4}}`` or a bare name).

* ``uniform``: ``t_i = i / N``.
* ``shift(s)``: ``t_i = u_i / (u_i + s - s u_i)``, ``u_i = i / N`` (released demos: ``s = 4``); ``s > 1``
  spends more steps near the noise end, where the global layout is decided.
* ``sigmoid(k)``: ``t_i = (sig(k (u_i - 1/2)) - sig(-k/2)) / (sig(k/2) - sig(-k/2))``, denser at both ends
  (SPEC section 5, *ours*); ``k -> 0`` tends to uniform.
* ``explicit(values)``: the given list (must start at 0, end at 1 and increase strictly).
* ``token_shift(base_tokens, max_tokens, base_shift, max_shift)``: ``shift(s)`` with ``s = exp(mu)`` and ``mu``
  linear in the sample's token count n: ``mu = base_shift + (max_shift - base_shift) (n - base_tokens) /
  (max_tokens - base_tokens)`` (Lumina-Image 2.0 / FLUX's resolution-dependent shift; defaults 256, 4096, 0.5,
  1.15: 1024 px with a factor-8 autoencoder and patch 2 is 4096 tokens, mu = 1.15, s = 3.16). In sigma = 1 - t
  this is ``sigma' = e^mu sigma / (1 + (e^mu - 1) sigma)``, the scheduler's ``time_shift(mu, 1, sigma)``. The
  grid needs the token count: :func:`time_grid` takes it as ``tokens=`` (``generate`` passes the layout's).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lumina_core.registry import TIME_GRIDS


class TimeGrid(abc.ABC):
    """Base class of sampling time grids: ``N + 1`` strictly increasing times from 0 (noise) to 1 (data)."""

    @abc.abstractmethod
    def __call__(self, steps: int, device: torch.device | str | None = None) -> Tensor:
        """(steps + 1,) float64 times."""


def _u(steps: int, device) -> Tensor:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"a time grid needs a positive whole number of steps; got {steps!r}")
    return torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64, device=device)


@TIME_GRIDS.register("uniform")
class UniformGrid(TimeGrid):
    """``t_i = i / N``."""

    def __call__(self, steps: int, device=None) -> Tensor:
        return _u(steps, device)


@TIME_GRIDS.register("shift")
class ShiftGrid(TimeGrid):
    """``t_i = u_i / (u_i + s - s u_i)`` with ``u_i = i / N``."""

    def __init__(self, s: float = 4.0) -> None:
        if s <= 0:
            raise ValueError(f"shift grid needs s > 0; got s={s}")
        self.s = float(s)

    def __call__(self, steps: int, device=None) -> Tensor:
        u = _u(steps, device)
        t = u / (u + self.s - self.s * u)
        t[0], t[-1] = 0.0, 1.0  # exact end points despite rounding (s = 0.4 gives 1 + 2e-16)
        return t


@TIME_GRIDS.register("token_shift")
class TokenShiftGrid(TimeGrid):
    """``shift(exp(mu(n)))`` with ``mu(n)`` linear in the token count n through (base_tokens, base_shift) and
    (max_tokens, max_shift)."""

    def __init__(
        self, base_tokens: int = 256, max_tokens: int = 4096, base_shift: float = 0.5, max_shift: float = 1.15
    ) -> None:
        if not 0 < base_tokens < max_tokens:
            raise ValueError(
                f"token_shift grid needs 0 < base_tokens < max_tokens; got {base_tokens} and {max_tokens}"
            )
        self.base_tokens, self.max_tokens = int(base_tokens), int(max_tokens)
        self.base_shift, self.max_shift = float(base_shift), float(max_shift)

    def mu(self, tokens: int) -> float:
        """``base_shift + (max_shift - base_shift) (tokens - base_tokens) / (max_tokens - base_tokens)``."""
        slope = (self.max_shift - self.base_shift) / (self.max_tokens - self.base_tokens)
        return self.base_shift + slope * (int(tokens) - self.base_tokens)

    def for_tokens(self, tokens: int) -> ShiftGrid:
        """The shift grid of a sample of ``tokens`` tokens: ``s = exp(mu(tokens))``."""
        if int(tokens) < 1:
            raise ValueError(f"token_shift grid needs a positive token count; got {tokens}")
        return ShiftGrid(math.exp(self.mu(tokens)))

    def __call__(self, steps: int, device=None, tokens: int | None = None) -> Tensor:
        if tokens is None:
            raise ValueError(
                "the token_shift grid depends on the number of tokens of the sample; pass tokens= "
                "(generate passes its layout's)"
            )
        return self.for_tokens(tokens)(steps, device=device)


@TIME_GRIDS.register("sigmoid")
class SigmoidGrid(TimeGrid):
    """``t_i = (sig(k (u_i - 1/2)) - sig(-k/2)) / (sig(k/2) - sig(-k/2))``."""

    def __init__(self, k: float = 4.0) -> None:
        if k <= 0:
            raise ValueError(f"sigmoid grid needs k > 0; got k={k}")
        self.k = float(k)

    def __call__(self, steps: int, device=None) -> Tensor:
        u = _u(steps, device)
        lo, hi = 1.0 / (1.0 + math.exp(self.k / 2)), 1.0 / (1.0 + math.exp(-self.k / 2))
        t = (torch.sigmoid(self.k * (u - 0.5)) - lo) / (hi - lo)
        t[0], t[-1] = 0.0, 1.0  # exact end points despite rounding
        return t


@TIME_GRIDS.register("explicit")
class ExplicitGrid(TimeGrid):
    """A given list of times ``0 = t_0 < t_1 < ... < t_N = 1``; ``steps``, if given, must equal N."""

    def __init__(self, values: Sequence[float]) -> None:
        t = torch.as_tensor(list(values), dtype=torch.float64)
        check_grid(t)
        self.values = t

    def __call__(self, steps: int | None = None, device=None) -> Tensor:
        n = self.values.numel() - 1
        if steps is not None and int(steps) != n:
            raise ValueError(f"explicit grid has {n} steps but {steps} were asked for")
        return self.values.to(device)


def check_grid(t: Tensor) -> Tensor:
    """Raise ValueError unless ``t`` is 1-D, has two or more points and strictly increases within [0, 1]."""
    t_ = t.detach()  # a fitted grid may carry gradients; the checks need only values
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"a time grid must be a 1-D list of at least 2 times; got shape {tuple(t.shape)}")
    if bool((t_[1:] <= t_[:-1]).any()):
        raise ValueError(f"time grid must increase strictly; got {t_.tolist()}")
    if float(t_[0]) < 0.0 or float(t_[-1]) > 1.0:
        raise ValueError(f"time grid must lie in [0, 1]; got [{float(t_[0])}, {float(t_[-1])}]")
    return t


def time_grid(spec: Any = "uniform", steps: int | None = None, device=None, tokens: int | None = None) -> Tensor:
    """A (steps + 1,) float64 grid from a name, a ``{name, params}`` node, a :class:`TimeGrid`, a list of
    times or a tensor; ``tokens`` (the sample's token count) is what a ``token_shift`` grid depends on."""
    if isinstance(spec, Tensor):
        return check_grid(spec.to(device=device, dtype=torch.float64))
    if isinstance(spec, (list, tuple)):
        return check_grid(torch.as_tensor(list(spec), dtype=torch.float64, device=device))
    grid = spec if isinstance(spec, TimeGrid) else TIME_GRIDS.build(spec)
    if steps is None and not isinstance(grid, ExplicitGrid):
        raise ValueError(f"time grid {spec!r} needs a number of steps")
    if isinstance(grid, TokenShiftGrid):
        return check_grid(grid(steps, device=device, tokens=tokens))
    return check_grid(grid(steps, device=device))

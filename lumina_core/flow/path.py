"""The linear (rectified-flow) probability path and its velocity target.

With noise ``x0 ~ N(0, I)`` at ``t = 0`` and data ``x1`` at ``t = 1``:

    x_t  = t x1 + (1 - t) x0                       u_t = dx_t/dt = x1 - x0

and, with the OT-CFM minimum noise level ``sigma_min`` (Lipman et al. 2023), so that ``x_1`` keeps a little
noise of standard deviation ``sigma_min`` around the data:

    x_t  = t x1 + (1 - (1 - sigma_min) t) x0       u_t = x1 - (1 - sigma_min) x0

``sigma_min = 0`` is the released Lumina-Next path.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class PathSample:
    """One draw from a probability path.

    Attributes:
        x0: noise, same shape as ``x1``.
        x1: data, (B, ...).
        t: (B,) times in [0, 1].
        x_t: the point on the path at time ``t``.
        dx_t: the target velocity ``d x_t / dt`` at that point.
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


class LinearPath:
    """``x_t = t x1 + (1 - (1 - sigma_min) t) x0``; velocity ``x1 - (1 - sigma_min) x0`` (see module doc)."""

    def __init__(self, sigma_min: float = 0.0) -> None:
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1); got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """The path point and target velocity for noise ``x0``, data ``x1`` and per-sample times ``t`` (B,)."""
        if x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape; got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        if t.dim() != 1 or t.shape[0] != x1.shape[0]:
            raise ValueError(f"t must be (B,) = ({x1.shape[0]},); got {tuple(t.shape)}")
        tt = t.to(x1.dtype).view(-1, *([1] * (x1.dim() - 1)))  # (B, 1, ..., 1)
        c0 = 1.0 - self.sigma_min
        x_t = tt * x1 + (1.0 - c0 * tt) * x0
        dx_t = x1 - c0 * x0
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=dx_t)

    def velocity_to_x1(self, x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """Data estimate from a velocity: ``x1 = (1 - sigma_min) x_t + (1 - (1 - sigma_min) t) v``."""
        tt = t.to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
        # x0 = (x1 - v) / c0 in x_t = t x1 + (1 - c0 t) x0 gives c0 x_t = x1 - (1 - c0 t) v.
        c0 = 1.0 - self.sigma_min
        return c0 * x_t + (1.0 - c0 * tt) * v

"""The flow-matching objective on token batches.

For data tokens ``x1`` (B, L, D) with padding mask ``m`` (B, L), noise ``x0 ~ N(0, I)`` and per-sample times
``t ~ p(t)``, the model predicts the velocity at ``x_t`` and the loss is

    loss = 1/B sum_b  [ sum_{l, d} m_bl (v_theta(x_t, t)_bld - u_bld)^2 ] / (D sum_l m_bl)

i.e. the mean squared error over each sample's *real* tokens and channels, then the batch mean: padded tokens
count for nothing and a long sample weighs as much as a short one (SPEC section 4). Tokens the batch marks as
given (``TokenBatch.given``, e.g. a condition view) are the data itself at every ``t`` (``x_t = x1`` there) and
drop out of ``m``: the model sees them clean and is graded on the generated tokens only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumina_core.flow.path import LinearPath
from lumina_core.flow.time_samplers import TimeSampler
from lumina_core.objective import LossResult, Objective
from lumina_core.registry import OBJECTIVES, TIME_SAMPLERS
from lumina_core.tokens import Condition, TokenBatch


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-sample mean of ``(pred - target)^2`` over real tokens (``mask`` (B, L)) and channels: (B,)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, L)
    m = mask.to(err.dtype)
    denom = m.sum(dim=1)
    if bool((denom == 0).any()):
        raise ValueError("masked_mse: a sample has no real tokens (mask is all False)")
    return (err * m).sum(dim=1) / denom


@OBJECTIVES.register("flow_matching")
class FlowMatching(Objective):
    """Flow matching with the linear path (optionally OT-CFM ``sigma_min``) and a registered time sampler.

    Args:
        time_sampler: a ``{name, params}`` node of :data:`TIME_SAMPLERS` (or a bare name); default uniform.
        sigma_min: OT-CFM minimum noise level (0 = released path).
    """

    nested_components = {"time_sampler": TIME_SAMPLERS}

    def __init__(self, time_sampler: Any = "uniform", sigma_min: float = 0.0) -> None:
        self.time_sampler = (
            time_sampler if isinstance(time_sampler, TimeSampler) else TIME_SAMPLERS.build(time_sampler)
        )
        self.path = LinearPath(sigma_min)

    def loss(
        self,
        model: Any,
        task: str,
        batch: TokenBatch,
        cond: Condition,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> LossResult:
        """Scalar loss and detached stats (``loss``, ``t_mean``) for the data tokens in ``batch`` (the
        target is the data itself: ``targets`` is unused)."""
        x1 = batch.tokens
        b = x1.shape[0]
        gdev = generator.device if generator is not None else x1.device
        x0 = torch.randn(x1.shape, generator=generator, device=gdev, dtype=torch.float32).to(
            x1.device, x1.dtype
        )
        t = self.time_sampler(b, generator=generator, device=gdev).to(x1.device, torch.float32)
        ps = self.path.sample(x0, x1, t)
        x_t, graded = ps.x_t, batch.mask
        if batch.given is not None:  # given tokens: clean at every t, not graded
            x_t = torch.where(batch.given[..., None], x1, x_t)
            graded = graded & ~batch.given
        v = model.velocity(batch.with_tokens(x_t), t, cond, task=task)
        per_sample = masked_mse(v, ps.dx_t, graded)  # (B,)
        loss = per_sample.mean()
        return LossResult.of(loss, t_mean=t.mean())

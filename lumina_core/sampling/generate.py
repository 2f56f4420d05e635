"""Generation: noise in token space -> ODE integration of the model's (guided) velocity -> samples.

    layout = plugin.layout(shapes)                 # positions and mask, zero tokens
    x0     ~ N(0, I) on the real tokens (seeded)   # padded tokens stay 0; the trunk ignores them
    x1     = integrate(v, x0, time_grid(grid, steps), solver)
    samples = plugin.detokenize(layout.with_tokens(x1))

Image-to-image (SDEdit, any modality whose plugin tokenizes a sample): with ``init`` samples and a
``strength`` S the flow starts at ``t0 = 1 - S`` from the noised input instead of at 0 from noise,

    x_t0 = t0 * tokenize(init) + (1 - t0) * noise          (the probability path at t0; t = 1 is data)

and integrates over the time grid's points above ``t0`` (with ``t0`` prepended): S = 1 is plain generation
from the same noise (the input is ignored), S = 0 returns the input's tokens unchanged (no model call).

Tokens the layout marks as given (``TokenBatch.given``: a condition view, say) start at the layout's values
instead of noise and get zero velocity, so every solver leaves them exactly as given.

How to sample comes in one built, frozen :class:`~lumina_core.sampling.settings.SamplingSettings` (solver, time
grid, steps, guidance, RoPE scaling, context drop, seed, precision); keyword overrides named as in the recipe
(``steps=8``) make a new one for the call.

With guidance (``guidance.scale != 1`` and a conditioned model) the conditional and unconditional velocities come
from one batched call on ``[x, x]`` with ``[cond, uncond]``.

``precision="bf16"`` evaluates the model under bf16 autocast (on CPUs with oneDNN bf16 support the trunk's
products run on the bf16 oneDNN route, ``lumina_core/model/linear.py``); the velocity is cast back to the
integration dtype before guidance and the solver step, so the ODE state, the time grid and the guidance
combination ``v_u + w (v_c - v_u)`` stay in fp32.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lumina_core.sampling.grids import time_grid
from lumina_core.sampling.guidance import cfg_combine, cfg_renormalize, channel_mask
from lumina_core.sampling.integrate import StepHook, integrate
from lumina_core.sampling.settings import PRECISIONS, SamplingSettings
from lumina_core.tokens import Condition, TokenBatch


def token_noise(layout: TokenBatch, seed: int | None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal tokens for the real positions of ``layout``, zero on padding; drawn on the CPU from
    ``seed`` sample by sample, so a seed gives the same noise on every device."""
    gen = torch.Generator()
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    out = torch.zeros(layout.tokens.shape, dtype=dtype)
    for i, n in enumerate(layout.lengths.tolist()):
        out[i, :n] = torch.randn(n, layout.dim, generator=gen, dtype=dtype)
    return out.to(layout.tokens.device)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with oneDNN bf16
    (AVX-512 BF16 / AMX). Elsewhere bf16 is emulated and slower than fp32."""
    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def model_precision(precision: str, device: str | torch.device) -> Any:
    """A context manager for the model calls of one sampling run: ``"fp32"`` (nothing), ``"bf16"`` (bf16
    autocast on the device's type) or ``"auto"`` (bf16 where the device computes it natively, else fp32)."""
    import contextlib

    if precision not in PRECISIONS:
        raise ValueError(f"sampling precision must be one of {PRECISIONS}; got {precision!r}")
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def guided_velocity(
    model: Any,
    task: str,
    layout: TokenBatch,
    cond: Condition,
    uncond: Condition | None,
    settings: SamplingSettings,
    mask: Tensor | None = None,
):
    """``velocity_fn(x, t, **extra)`` for :func:`integrate`: the model's velocity under ``settings``' RoPE
    scaling and context drop (the latter passed on only when set), classifier-free guided when ``uncond`` is
    given; the model runs in ``settings.precision`` and its velocity comes back in ``x``'s dtype. Guidance
    (``settings.guidance``) applies while ``t < trunc`` (the conditional velocity alone after), on the token
    channels where ``mask`` (D,) is True (all if None), and with ``renorm`` r the guided velocity's norm per
    sample is clipped to r times the conditional one's (:mod:`lumina_core.sampling.guidance`)."""
    guide, precision = settings.guidance, settings.precision
    base: dict[str, Any] = {"rope_scaling": settings.rope_scaling}
    if settings.context_drop is not None:
        base["context_drop"] = settings.context_drop

    def call(batch: TokenBatch, t: Tensor, c: Condition, dtype: torch.dtype, **kw: Any) -> Tensor:
        with model_precision(precision, batch.tokens.device):
            return model.velocity(batch, t, c, task=task, **kw).to(dtype)

    if uncond is None:

        def v(x: Tensor, t: Tensor, **extra: Any) -> Tensor:
            kw = {**base, **extra}
            return call(layout.with_tokens(x), t, cond, x.dtype, **kw)

        return v

    both = layout.repeat(2)  # conditional and unconditional halves, every field kept (given tokens too)
    cond2 = Condition.cat([cond, uncond])

    def v_cfg(x: Tensor, t: Tensor, **extra: Any) -> Tensor:
        kw = {**base, **extra}
        if not bool((t < guide.trunc).all()):  # guidance truncated: the conditional velocity alone
            return call(layout.with_tokens(x), t, cond, x.dtype, **kw)
        out = call(both.with_tokens(torch.cat([x, x])), torch.cat([t, t]), cond2, x.dtype, **kw)
        v_c, v_u = out.chunk(2)
        guided = cfg_combine(v_c, v_u, guide.scale, mask)
        if guide.renorm is not None:
            guided = cfg_renormalize(guided, v_c, guide.renorm, layout.mask)
        return guided

    return v_cfg


def hold_given(layout: TokenBatch, x0: Tensor, velocity_fn: Any) -> tuple[Tensor, Any]:
    """The start ``x0`` with ``layout.given`` tokens set to the layout's values, and a velocity function that is
    zero on them (so they stay exactly as given under any solver)."""
    keep = layout.given[..., None]
    start = torch.where(keep, layout.tokens.to(x0.dtype), x0)

    def v(x: Tensor, t: Tensor, **extra: Any) -> Tensor:
        return velocity_fn(x, t, **extra).masked_fill(keep, 0.0)

    return start, v


def sdedit_start(
    plugin: Any, layout: TokenBatch, init: Sequence[Tensor], strength: float, noise: Tensor, times: Tensor
) -> tuple[Tensor, Tensor | None, TokenBatch]:
    """The SDEdit start ``x_t0 = t0 x1 + (1 - t0) noise`` (``x1`` the tokenized ``init``, ``t0 = 1 - strength``;
    padding stays 0), the time grid from ``t0`` (``[t0, grid points above t0]``, or None when nothing is left
    to integrate: ``t0 = 1``) and the layout to detokenize with: below strength 1 the init's token batch with
    zero tokens (it carries what the plugin recorded about each input, such as a point cloud's normalisation),
    at strength 1 ``layout`` itself (the input ignored altogether)."""
    if len(init) != layout.batch_size:
        raise ValueError(
            f"got {len(init)} init samples for {layout.batch_size} samples to make; give one per sample"
        )
    device = layout.tokens.device
    batch = plugin.tokenize([s.to(device) for s in init]).to(device)
    if batch.tokens.shape != layout.tokens.shape or not torch.equal(batch.mask, layout.mask):
        raise ValueError(
            f"the init samples tokenize to {tuple(batch.tokens.shape)} tokens (batch, length, width), but the "
            f"samples to make have the layout {tuple(layout.tokens.shape)} (shapes {list(layout.shapes)}); "
            "leave shapes out to take them from the init samples"
        )
    t0 = 1.0 - float(strength)
    x1 = batch.tokens.to(noise.dtype) * layout.mask[..., None]
    start = t0 * x1 + (1.0 - t0) * noise
    rest = times[times > t0 + 1e-9]
    if strength < 1.0:  # at strength 1 the input is ignored altogether: plain generation's layout decodes
        layout = batch.with_tokens(torch.zeros_like(layout.tokens))
    if rest.numel() == 0:
        return start, None, layout
    return start, torch.cat([torch.full((1,), t0, dtype=times.dtype, device=times.device), rest]), layout


@torch.no_grad()
def generate(
    model: Any,
    plugin: Any,
    conditioner: Any,
    task: str,
    conditions: Sequence[Any] | None,
    shapes: Sequence[tuple[int, ...]] | None = None,
    settings: SamplingSettings | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
    hooks: Sequence[StepHook] = (),
    return_nfe: bool = False,
    dtype: torch.dtype = torch.float32,
    init: Sequence[Tensor] | None = None,
    strength: float | None = None,
    **overrides: Any,
) -> list[Tensor] | tuple[list[Tensor], int]:
    """Generate one sample per condition (or per shape when ``conditions`` is None).

    Args:
        model: a ``LuminaModel`` (anything with ``velocity(batch, t, cond, task=..., rope_scaling=...)``).
        plugin: the task's modality plugin (``layout``, ``detokenize``, ``default_shape``).
        conditioner: the task's conditioner (``encode``, ``null_value``), or None for an unconditional model.
        conditions: raw conditions (captions, class ids, ...), one per sample, or None.
        shapes: per-sample shape descriptors (a tuple, or the plugin's request type: a tuple subclass that
            names the parts, e.g. multi-view's cameras and given views); default ``plugin.default_shape()``.
        settings: the built :class:`SamplingSettings` (solver, time grid, steps, guidance, RoPE scaling,
            context drop, seed, precision); None: the recipe schema's defaults.
        overrides: settings replaced for this call, named as in the recipe (``steps=8``, ``solver="euler"``,
            ``cfg_scale=4.0``, ``seed=3``...: :meth:`SamplingSettings.with_overrides`).
        hooks: per-evaluation hooks (see :func:`integrate`).
        return_nfe: also return the number of network evaluations (a CFG pair counts once).
        dtype: the integration dtype (the noise is drawn in float32 from the seed, then cast; use float64
            with a float64 model for reference solutions).
        init: samples in the plugin's sample space (one per sample to make; ``shapes`` default to theirs) to
            start from (SDEdit, see the module doc), or None.
        strength: with ``init``, how much of the flow is re-run, in [0, 1] (default 0.8): the start time is
            ``t0 = 1 - strength``.

    The noise seed is ``settings.seed`` (same seed, same samples). A ``token_shift`` grid is resolved for the
    layout's token count (the longest sample's).
    """
    settings = (settings or SamplingSettings.build()).with_overrides(**overrides)
    if init is not None:
        init = list(init)
        strength = 0.8 if strength is None else float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(
                f"strength must be in [0, 1] (0: return the input, 1: ignore it); got {strength}"
            )
        if shapes is None:
            shapes = [plugin.sample_shape(s) for s in init]
    elif strength is not None:
        raise ValueError("strength needs init samples to start from (init=[...]); got strength without init")
    if conditions is None and shapes is None:
        raise ValueError("generate needs conditions, shapes, or both (to know how many samples to make)")
    if shapes is None:
        shapes = [plugin.default_shape()] * len(conditions)  # type: ignore[arg-type]
    if conditions is None:
        conditions = [None] * len(shapes)
    if len(conditions) != len(shapes):
        raise ValueError(f"got {len(conditions)} conditions but {len(shapes)} shapes")
    shapes = [s if isinstance(s, tuple) else tuple(s) for s in shapes]  # a plugin's request type is kept

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        layout = plugin.layout(shapes, device=device)
        layout = layout.to(device)
        x0 = token_noise(layout, settings.seed).to(dtype)
        times = time_grid(settings.grid, settings.steps, device=device, tokens=int(layout.lengths.max()))
        if init is not None:  # the init's own token batch: its meta (e.g. normalisation) decodes the result
            x0, times, layout = sdedit_start(plugin, layout, init, strength, x0, times)
        use_cond = conditioner is not None and getattr(conditioner, "kind", "none") != "none"
        if use_cond:
            cond = conditioner.encode(list(conditions), device=device)
        else:
            cond = Condition()
        uncond = None
        if use_cond and settings.guidance.active and cond.context is not None:
            uncond = conditioner.encode([conditioner.null_value] * len(conditions), device=device)
        mask = None
        if uncond is not None:
            mask = channel_mask(plugin, settings.guidance.channels, shapes[0], layout.dim)
        v = guided_velocity(model, task, layout, cond, uncond, settings, mask)
        if layout.given is not None:  # given tokens start at their values and stay there
            x0, v = hold_given(layout, x0, v)
        if times is None:  # strength 0: nothing to integrate
            x1, nfe = x0, 0
        else:  # a fresh copy of the solver: a multistep solver keeps its history while it solves
            x1, nfe = integrate(v, x0, times, copy.copy(settings.solver), hooks=hooks, progress=progress)
        samples = plugin.detokenize(layout.with_tokens(x1))
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return (samples, nfe) if return_nfe else samples

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

With guidance (``cfg_scale != 1`` and a conditioned model) the conditional and unconditional velocities come
from one batched call on ``[x, x]`` with ``[cond, uncond]``.

``precision="bf16"`` evaluates the model under bf16 autocast (on CPUs with oneDNN bf16 support the trunk's
products run on the bf16 oneDNN route, ``lumina_core/model/linear.py``); the velocity is cast back to the
integration dtype before guidance and the solver step, so the ODE state, the time grid and the guidance
combination ``v_u + w (v_c - v_u)`` stay in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lumina_core.sampling.grids import _plain, time_grid
from lumina_core.sampling.guidance import cfg_combine, cfg_renormalize, channel_mask
from lumina_core.sampling.integrate import StepHook, integrate
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


def resolve_rope_scaling(rope_scaling: Any) -> Any:
    """None, a RopeScaling, a kind name or a ``{name: kind, params: {...}}`` node -> a RopeScaling or None."""
    if rope_scaling is None or not (isinstance(rope_scaling, str) or hasattr(rope_scaling, "keys")):
        return rope_scaling
    from lumina_core.model import RopeScaling

    return RopeScaling.build(rope_scaling if isinstance(rope_scaling, str) else _plain(rope_scaling))


PRECISIONS = ("fp32", "bf16", "auto")


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
    cfg_scale: float,
    mask: Tensor | None = None,
    rope_scaling: Any = None,
    context_drop: Any = None,
    precision: str = "fp32",
    cfg_trunc: float = 1.0,
    cfg_renorm: float | None = None,
):
    """``velocity_fn(x, t, **extra)`` for :func:`integrate`: the model's velocity, classifier-free guided
    when ``uncond`` is given (``context_drop`` is passed on only when set); the model runs in ``precision``
    and its velocity comes back in ``x``'s dtype. Guidance applies while ``t < cfg_trunc`` (the conditional
    velocity alone after), and with ``cfg_renorm`` r the guided velocity's norm per sample is clipped to r
    times the conditional one's (:mod:`lumina_core.sampling.guidance`)."""
    base = {"rope_scaling": rope_scaling}
    if context_drop is not None:
        base["context_drop"] = context_drop
    model_precision(precision, layout.tokens.device)  # validates the name before any model call

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
        if not bool((t < cfg_trunc).all()):  # guidance truncated: the conditional velocity alone
            return call(layout.with_tokens(x), t, cond, x.dtype, **kw)
        out = call(both.with_tokens(torch.cat([x, x])), torch.cat([t, t]), cond2, x.dtype, **kw)
        v_c, v_u = out.chunk(2)
        guided = cfg_combine(v_c, v_u, cfg_scale, mask)
        if cfg_renorm is not None:
            guided = cfg_renormalize(guided, v_c, float(cfg_renorm), layout.mask)
        return guided

    return v_cfg


def check_guidance_settings(cfg_trunc: float, cfg_renorm: float | None) -> None:
    """Raise ValueError unless ``0 <= cfg_trunc <= 1`` and ``cfg_renorm`` is None or > 0."""
    if not 0.0 <= float(cfg_trunc) <= 1.0:
        raise ValueError(
            f"cfg_trunc is the flow time (0 noise, 1 data) from which guidance stops, in [0, 1]; got {cfg_trunc}"
        )
    if cfg_renorm is not None and not float(cfg_renorm) > 0.0:
        raise ValueError(
            "cfg_renorm clips the guided velocity's norm to that many times the conditional one's: a number "
            f"> 0, or null for no clipping; got {cfg_renorm}"
        )


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
    steps: int | None = None,
    solver: Any = None,
    grid: Any = None,
    cfg_scale: float = 1.0,
    cfg_channels: Any = None,
    rope_scaling: Any = None,
    context_drop: Any = None,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    hooks: Sequence[StepHook] = (),
    return_nfe: bool = False,
    dtype: torch.dtype = torch.float32,
    precision: str = "fp32",
    init: Sequence[Tensor] | None = None,
    strength: float | None = None,
    cfg_trunc: float = 1.0,
    cfg_renorm: float | None = None,
) -> list[Tensor] | tuple[list[Tensor], int]:
    """Generate one sample per condition (or per shape when ``conditions`` is None).

    Args:
        model: a ``LuminaModel`` (anything with ``velocity(batch, t, cond, task=..., rope_scaling=...)``).
        plugin: the task's modality plugin (``layout``, ``detokenize``, ``default_shape``).
        conditioner: the task's conditioner (``encode``, ``null_value``), or None for an unconditional model.
        conditions: raw conditions (captions, class ids, ...), one per sample, or None.
        shapes: per-sample shape descriptors; default ``plugin.default_shape()`` for every sample.
        steps, solver, grid: solver steps, the solver and the time grid; None takes the recipe schema's
            defaults (:class:`lumina_core.config.schema.SamplingConfig`: one set of defaults everywhere).
        cfg_scale: guidance scale ``w``; 1 disables guidance (one model call per evaluation).
        cfg_channels: None (guide all channels) or k / a mask (see :mod:`lumina_core.sampling.guidance`).
        rope_scaling: a ``RopeScaling`` or ``{name, params}`` node for resolution extrapolation.
        context_drop: a ``ContextDrop`` or mapping ``{factor, until, schedule, layers}`` (pooled self-attention
            keys and values, :mod:`lumina_core.model.context_drop`), or None.
        seed: noise seed (same seed, same samples); None draws a fresh one.
        hooks: per-evaluation hooks (see :func:`integrate`).
        return_nfe: also return the number of network evaluations (a CFG pair counts once).
        dtype: the integration dtype (the noise is drawn in float32 from the seed, then cast; use float64
            with a float64 model for reference solutions).
        precision: ``"fp32"`` or ``"bf16"``: the model's evaluations under bf16 autocast, the integration
            (state, grid, guidance, solver) in ``dtype``.
        init: samples in the plugin's sample space (one per sample to make; ``shapes`` default to theirs) to
            start from (SDEdit, see the module doc), or None.
        strength: with ``init``, how much of the flow is re-run, in [0, 1] (default 0.8): the start time is
            ``t0 = 1 - strength``.
        cfg_trunc: guidance only while ``t < cfg_trunc`` (1: throughout; Lumina-Image 2.0's CFG truncation).
        cfg_renorm: None, or r > 0: the guided velocity's norm per sample clipped to r times the conditional
            velocity's (Lumina-Image 2.0's CFG renormalisation).

    A ``token_shift`` grid is resolved for the layout's token count (the longest sample's).
    """
    check_guidance_settings(cfg_trunc, cfg_renorm)
    if init is not None:
        init = list(init)
        strength = 0.8 if strength is None else float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(
                f"strength must be in [0, 1] (0: return the input, 1: ignore it); got {strength}"
            )
        if shapes is None:
            shapes = [tuple(plugin.sample_shape(s)) for s in init]
    elif strength is not None:
        raise ValueError("strength needs init samples to start from (init=[...]); got strength without init")
    if conditions is None and shapes is None:
        raise ValueError("generate needs conditions, shapes, or both (to know how many samples to make)")
    if shapes is None:
        shapes = [tuple(plugin.default_shape())] * len(conditions)  # type: ignore[arg-type]
    if conditions is None:
        conditions = [None] * len(shapes)
    if len(conditions) != len(shapes):
        raise ValueError(f"got {len(conditions)} conditions but {len(shapes)} shapes")
    if steps is None or solver is None or grid is None:
        from lumina_core.config.schema import SamplingConfig

        default = SamplingConfig()
        explicit = (
            grid is not None
            and not isinstance(grid, str)
            and getattr(grid, "get", lambda k: None)("name") == "explicit"
        )
        steps = default.steps if steps is None and not explicit else steps  # an explicit grid has its own
        solver = (
            {"name": default.solver.name, "params": dict(default.solver.params)} if solver is None else solver
        )
        grid = {"name": default.grid.name, "params": dict(default.grid.params)} if grid is None else grid
    model_precision(precision, device)  # a bad name fails before the model is touched

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        layout = plugin.layout([tuple(s) for s in shapes], device=device)
        layout = layout.to(device)
        x0 = token_noise(layout, seed).to(dtype)
        times = time_grid(grid, steps, device=device, tokens=int(layout.lengths.max()))
        if init is not None:  # the init's own token batch: its meta (e.g. normalisation) decodes the result
            x0, times, layout = sdedit_start(plugin, layout, init, strength, x0, times)
        use_cond = conditioner is not None and getattr(conditioner, "kind", "none") != "none"
        if use_cond:
            cond = conditioner.encode(list(conditions), device=device)
        else:
            cond = Condition()
        uncond = None
        if use_cond and cfg_scale != 1.0 and cond.context is not None:
            uncond = conditioner.encode([conditioner.null_value] * len(conditions), device=device)
        mask = (
            channel_mask(plugin, cfg_channels, tuple(shapes[0]), layout.dim) if uncond is not None else None
        )
        v = guided_velocity(
            model,
            task,
            layout,
            cond,
            uncond,
            cfg_scale,
            mask,
            resolve_rope_scaling(rope_scaling),
            _plain(context_drop) if hasattr(context_drop, "keys") else context_drop,
            precision,
            cfg_trunc,
            cfg_renorm,
        )
        if layout.given is not None:  # given tokens start at their values and stay there
            x0, v = hold_given(layout, x0, v)
        if times is None:  # strength 0: nothing to integrate
            x1, nfe = x0, 0
        else:
            x1, nfe = integrate(v, x0, times, solver, hooks=hooks, progress=progress)
        samples = plugin.detokenize(layout.with_tokens(x1))
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return (samples, nfe) if return_nfe else samples

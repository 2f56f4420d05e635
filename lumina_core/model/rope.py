"""Rotary position embedding (RoPE) on N position axes, and its scaled variants for extrapolation.

A head of dimension ``d`` holds ``P = d / 2`` rotation pairs. Each pair ``j`` belongs to one position axis
``a(j)`` and has its own angular frequency ``w_j``; a token at position ``p`` rotates the pair by the angle
``p[a(j)] * w_j``. In memory, pair ``j`` is ``(x[j], x[j + P])`` (the two halves of the head), so the
rotation runs on contiguous halves:

    x'[j]     = x[j] cos(p w_j) - x[j+P] sin(p w_j)
    x'[j + P] = x[j] sin(p w_j) + x[j+P] cos(p w_j)

The released model stores pair ``j`` as ``(x[2j], x[2j+1])``; as query-key products only need both sides
to agree, the importers permute the query/key projection rows (and their QK-norm parameters) once at load
time (see the image plugin's ``lumina_modalities.image.interop.keys``), which keeps the run-time rotation
cheap and real-valued.

so the dot product of a rotated query and key depends only on the position difference. Axis ``a`` owns
``n_a`` pairs (its share of ``AdapterSpec.axis_split``) with frequencies ``w_k = theta^(-2k / d_a)``,
``d_a = 2 n_a``, ``k = 0 .. n_a - 1``. Layouts:

* ``"interleaved"`` - the axes take pairs in turn (pair 0 -> axis 0, pair 1 -> axis 1, ...), the released
  2D layout (h and w alternate pair by pair, ``w_k = theta^(-4k / d)``); an axis that runs out of pairs
  drops out of the rotation;
* ``"blocked"`` - each axis owns a contiguous run of pairs.

Scaling (``s`` per axis, >= 1 beyond the training extent ``L``, and below 1 on a smaller input only with
``shrink``; ``d`` the head dimension). Each kind is a
registered :class:`RopeScalingRule` in :data:`lumina_core.registry.ROPE_SCALINGS`, so a plugin or a user
adds one with ``@ROPE_SCALINGS.register("name")``; :class:`RopeScaling` names the kind and the settings
every kind shares. Built in:

* ``pi``:  ``w' = w / s``;
* ``ntk``: ``theta' = theta * s`` (released) or ``theta * s^(d_a / (d_a - 2))`` (``ntk_mode="dd2"``);
* ``freq_aware`` (ours, NTK-by-parts): ``r = L / lambda`` with ``lambda = 2 pi / w``;
  ``g = clip((r - low) / (high - low), 0, 1)``; ``w' = g w + (1 - g) w / s`` (high frequencies kept,
  low ones interpolated);
* ``freq_aware_paper`` (the paper's form): ``theta' = theta * s^(d_a / d_target)`` with
  ``d_target = d_a log_theta(L / (2 pi))``, the rotary width at which the wavelength equals ``L``: that
  frequency is divided by exactly ``s``, higher ones by less, lower ones by more. (Per axis; the paper writes
  it with ``d_head`` for 1-D positions. ``d_a`` cancels: ``theta' = theta s^(ln theta / ln(L / 2 pi))``.)
  Needs ``L > 2 pi``;
* ``time_aware`` (released smooth variant): ``d_t = t d + 1``, ``theta_t = theta s^(d / d_t)``,
  ``w' = max(w / s, theta_t^(-2k / d_a))`` (for 2D, ``2k / d_a = 4k / d``); PI-like at ``t = 0`` and
  NTK-like at ``t = 1``;
* ``time_aware_paper`` (the paper's form): the same with ``d_t = (d - 1) t + 1``, which reaches exactly
  ``theta s`` (linear NTK) at ``t = 1``;
* ``time_aware_stepwise`` (released sampler): PI while ``t < threshold`` (0.3), NTK after;
* proportional attention (any kind): self-attention logits scaled by ``sqrt(log_{N_train} N)`` on top of
  ``1 / sqrt(d)``, ``N`` the sample's number of tokens.

Angles are computed and applied in fp32 with real cos/sin (no complex numbers).
"""

from __future__ import annotations

import abc
import inspect
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from lumina_core.registry import ROPE_SCALINGS

#: settings every kind shares (fields of RopeScaling); the rest of a recipe's params go to the kind's rule.
#: ``ROPE_KINDS`` (every registered kind, built-in and plugins') is read from the registry when asked.
COMMON_PARAMS = ("scale", "proportional_attention", "scale_mode", "train_tokens", "shrink")


@dataclass(frozen=True)
class FrequencyInputs:
    """What a scaling rule sees: one row per rotation pair of the head.

    Attributes:
        k, d_axis: (P,) frequency index and rotary width ``d_a`` of the pair's axis.
        scale: (B, P) scale factor of the pair's axis, per sample.
        theta: the RoPE base.
        head_dim: ``d``.
        t: (B, 1) flow time, or None when the caller has none.
        train_extent: (P,) training extent ``L`` of the pair's axis, or None.
    """

    k: Tensor
    d_axis: Tensor
    scale: Tensor
    theta: float
    head_dim: int
    t: Tensor | None = None
    train_extent: Tensor | None = None

    def base(self) -> Tensor:
        """(1, P) unscaled frequencies ``theta^(-2k / d_a)``."""
        return base_frequencies(self.k, self.d_axis, self.theta)[None]

    def with_base(self, log_theta: Tensor) -> Tensor:
        """(B, P) frequencies ``exp(-2k / d_a * log_theta)`` for a per-sample, per-pair log-base."""
        return torch.exp(
            -2.0 * self.k.double()[None] / self.d_axis.double()[None] * log_theta.double()
        ).float()


class RopeScalingRule(abc.ABC):
    """Base class of a RoPE scaling: maps the batch's per-pair scale factors to new frequencies.

    Subclass, implement :meth:`frequencies`, register with ``@ROPE_SCALINGS.register("name")``; constructor
    keyword arguments are the kind's own recipe params (``rope_scaling: {name: ..., params: {...}}``, next to
    the shared ``scale``, ``proportional_attention``, ``scale_mode``, ``train_tokens``).
    """

    #: the rule reads the flow time ``t`` (callers must pass it)
    needs_time: ClassVar[bool] = False
    #: the rule reads the training extent ``L`` (``AdapterSpec.train_extent``)
    needs_extent: ClassVar[bool] = False
    #: the recipe settings every kind shares (the :data:`COMMON_PARAMS` fields of :class:`RopeScaling`)
    shared_parameters: ClassVar[tuple[inspect.Parameter, ...]] = ()

    @abc.abstractmethod
    def frequencies(self, f: FrequencyInputs) -> Tensor:
        """(B, P) scaled frequencies."""


@ROPE_SCALINGS.register("none")
class NoScaling(RopeScalingRule):
    """``w' = w``."""

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        return f.base().expand_as(f.scale)


@ROPE_SCALINGS.register("pi")
class PositionInterpolation(RopeScalingRule):
    """``w' = w / s``."""

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        return f.base() / f.scale


def _check_mode(ntk_mode: str) -> None:
    if ntk_mode not in ("linear", "dd2"):
        raise ValueError(f"ntk_mode must be 'linear' or 'dd2', got {ntk_mode!r}")


@ROPE_SCALINGS.register("ntk")
class NTKScaling(RopeScalingRule):
    """``theta' = theta s`` (``ntk_mode="linear"``, released) or ``theta s^(d_a / (d_a - 2))`` (``"dd2"``)."""

    def __init__(self, ntk_mode: str = "linear") -> None:
        _check_mode(ntk_mode)
        self.ntk_mode = ntk_mode

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        return _ntk(f.k, f.d_axis, f.scale, f.theta, self.ntk_mode)


@ROPE_SCALINGS.register("freq_aware")
class NTKByParts(RopeScalingRule):
    """Ours: ``w' = g w + (1 - g) w / s``, ``g = clip((L w / 2 pi - low) / (high - low), 0, 1)``."""

    needs_extent = True

    def __init__(self, freq_low: float = 0.25, freq_high: float = 1.0) -> None:
        if not 0 <= freq_low < freq_high:
            raise ValueError(f"need 0 <= freq_low < freq_high, got {freq_low}, {freq_high}")
        self.freq_low, self.freq_high = float(freq_low), float(freq_high)

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        w = f.base()
        ratio = f.train_extent[None] * w / (2 * math.pi)  # training length / wavelength
        g = ((ratio - self.freq_low) / (self.freq_high - self.freq_low)).clamp(0.0, 1.0)
        return g * w + (1 - g) * w / f.scale


@ROPE_SCALINGS.register("freq_aware_paper")
class FrequencyAwarePaper(RopeScalingRule):
    """The paper's form: ``theta' = theta s^(d_a / d_target)``, ``d_target = d_a log_theta(L / 2 pi)``."""

    needs_extent = True

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        extent = f.train_extent.double()
        if bool((extent <= 2 * math.pi).any()):
            raise ValueError(
                "freq_aware_paper needs a training extent longer than 2 pi positions on every axis "
                f"(d_target = d log_theta(L / 2 pi) must be positive); got train_extent {extent.unique().tolist()}"
            )
        exponent = math.log(f.theta) / torch.log(extent / (2 * math.pi))  # d_a / d_target, (P,)
        log_theta = math.log(f.theta) + exponent[None] * torch.log(f.scale.double())
        return f.with_base(log_theta)


class _TimeAware(RopeScalingRule):
    """``theta_t = theta s^(d / d_t)``, ``w' = max(w / s, theta_t^(-2k / d_a))`` for a schedule ``d_t(t)``."""

    needs_time = True

    def d_t(self, t: Tensor, d: int) -> Tensor:
        raise NotImplementedError

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        d_t = self.d_t(f.t, f.head_dim)  # (B, 1)
        log_theta_t = math.log(f.theta) + (f.head_dim / d_t) * torch.log(f.scale)  # (B, P)
        return torch.maximum(f.base() / f.scale, f.with_base(log_theta_t))


@ROPE_SCALINGS.register("time_aware")
class TimeAwareReleased(_TimeAware):
    """Released smooth variant: ``d_t = t d + 1``."""

    def d_t(self, t: Tensor, d: int) -> Tensor:
        return t * d + 1.0


@ROPE_SCALINGS.register("time_aware_paper")
class TimeAwarePaper(_TimeAware):
    """The paper's form: ``d_t = (d - 1) t + 1`` (``theta_1 = theta s``, linear NTK, at t = 1)."""

    def d_t(self, t: Tensor, d: int) -> Tensor:
        return t * (d - 1) + 1.0


@ROPE_SCALINGS.register("time_aware_stepwise")
class TimeAwareStepwise(RopeScalingRule):
    """Released sampler: PI while ``t < threshold``, NTK (``ntk_mode``) after."""

    needs_time = True

    def __init__(self, threshold: float = 0.3, ntk_mode: str = "linear") -> None:
        _check_mode(ntk_mode)
        self.threshold, self.ntk_mode = float(threshold), ntk_mode

    def frequencies(self, f: FrequencyInputs) -> Tensor:
        ntk = _ntk(f.k, f.d_axis, f.scale, f.theta, self.ntk_mode)
        return torch.where(f.t < self.threshold, f.base() / f.scale, ntk)


@dataclass(frozen=True)
class RopeScaling:
    """How to scale RoPE when positions run beyond the training extent: a kind, the settings every kind shares,
    and the kind's rule built once with its own parameters.

    Attributes:
        kind: a name registered in :data:`lumina_core.registry.ROPE_SCALINGS` ("none", "pi", "ntk",
            "freq_aware", "freq_aware_paper", "time_aware", "time_aware_paper", "time_aware_stepwise", or a
            plugin's).
        scale: None (derived per axis from ``AdapterSpec.train_extent`` vs the batch's extent), one float
            for every axis, or a tuple with one factor per axis.
        proportional_attention: scale self-attention logits by ``sqrt(log_{N_train} N)``.
        scale_mode: how a derived scale is computed: "axis" (``extent_a / train_a`` per axis) or "area"
            (``sqrt(prod extent / prod train)`` for every axis, as the released pipeline does).
        train_tokens: ``N_train`` of proportional attention; None: product of ``train_extent``.
        shrink: let a derived scale go below 1 on a smaller input (``s = extent / train``, not
            ``max(1, extent / train)``): with ``pi`` every input's positions then span the training extent
            (``p w / s``: a 4-patch axis of a model trained on 8 patches is read at positions 0, 2, 4, 6).
        params: the kind's own parameters, its rule's constructor keywords (a mapping, kept as sorted
            ``((name, value), ...)``): ``ntk_mode`` of ``ntk``, ``threshold`` of ``time_aware_stepwise``,
            ``freq_low`` / ``freq_high`` of ``freq_aware``, a plugin kind's own.
        rule: the kind's :class:`RopeScalingRule` built with ``params`` (not a constructor argument); the
            rule owns those parameters (``RopeScaling("ntk", params={"ntk_mode": "dd2"}).rule.ntk_mode``).
    """

    kind: str = "none"
    scale: float | tuple[float, ...] | None = None
    proportional_attention: bool = False
    scale_mode: str = "axis"
    train_tokens: int | None = None
    shrink: bool = False
    params: Any = ()
    rule: RopeScalingRule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = self.params.items() if hasattr(self.params, "items") else self.params
        frozen = tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in params))
        object.__setattr__(self, "params", frozen)
        problems = []
        if self.scale_mode not in ("axis", "area"):
            problems.append(f"scale_mode must be 'axis' or 'area', got {self.scale_mode!r}")
        scales = (self.scale,) if isinstance(self.scale, (int, float)) else (self.scale or ())
        if any(float(s) <= 0 for s in scales):
            problems.append(f"scale factors must be positive, got {self.scale!r}")
        try:
            object.__setattr__(self, "rule", build_rule(self.kind, dict(frozen)))
        except (KeyError, TypeError, ValueError) as exc:  # unknown kinds and bad params fail here
            problems.append(str(exc).strip("'\""))
        if problems:
            raise ValueError("invalid RopeScaling: " + "; ".join(problems))

    @classmethod
    def build(cls, value: RopeScaling | dict | str | None) -> RopeScaling | None:
        """The one normaliser of the forms a recipe or a caller writes: a RopeScaling (returned as it is), a
        recipe component ``{"name": kind, "params": {...}}``, a flat mapping ``{"kind": ..., ...}``, a kind name,
        or None. Shared settings (:data:`COMMON_PARAMS`) become fields; the other params go to the kind's rule."""
        if value is None or isinstance(value, RopeScaling):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        value = dict(value)
        if "name" in value:
            params = dict(value.get("params") or {})
            params["kind"] = value["name"]
        else:
            params = value
        if isinstance(params.get("scale"), list):
            params["scale"] = tuple(params["scale"])
        mine = {"kind", *COMMON_PARAMS}
        own = {k: v for k, v in params.items() if k not in mine}
        return cls(**{k: v for k, v in params.items() if k in mine}, params=own)


def build_rule(kind: str, params: dict[str, Any]) -> RopeScalingRule:
    """The registered rule of ``kind`` built with its own ``params``; ValueError names the kinds, or the
    parameters the rule takes."""
    try:
        cls = ROPE_SCALINGS.get(kind)
    except KeyError as exc:
        names = ", ".join(ROPE_SCALINGS.names())
        raise ValueError(f"kind must be one of {names}, got {kind!r}; {exc}") from None
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in params if k not in accepted and not takes_any]
    if unknown:
        raise ValueError(
            f"RoPE scaling {kind!r} does not take {', '.join(map(repr, unknown))} "
            f"(it takes: {', '.join([*COMMON_PARAMS, *accepted])})"
        )
    return cls(**params)


#: the settings every kind shares, as keyword-only parameters: ``ROPE_SCALINGS.signature(name)`` puts them
#: before the rule's own constructor parameters, so a ``rope_scaling: {name, params}`` node is validated
#: like any other component
#: (annotations resolved to types, so a validator reads them without evaluating strings)
RopeScalingRule.shared_parameters = tuple(
    inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hint)
    for f, hint in ((f, typing.get_type_hints(RopeScaling)[f.name]) for f in fields(RopeScaling))
    if f.name in COMMON_PARAMS
)


def __getattr__(name: str) -> Any:
    """``ROPE_KINDS``: every registered scaling kind, read from the registry when asked (a plugin's too)."""
    if name == "ROPE_KINDS":
        return tuple(ROPE_SCALINGS.names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- pair layout -----------------------------------------------------------------------------------------
def axis_pairs(head_dim: int, axis_split: Sequence[int]) -> tuple[int, ...]:
    """Number of rotation pairs per axis: ``head_dim / 2`` pairs shared in the ratios of ``axis_split``.

    Raises ValueError when the split cannot divide the head dimension exactly.
    """
    if not axis_split:
        return ()
    if any(int(s) <= 0 for s in axis_split):
        raise ValueError(f"axis_split shares must be positive; got {tuple(axis_split)}")
    total = sum(int(s) for s in axis_split)
    n_pairs = head_dim // 2
    if head_dim % 2 or n_pairs % total:
        raise ValueError(
            f"head dim {head_dim} cannot be split {tuple(axis_split)} across RoPE axes: need an even head dim "
            f"whose {n_pairs} rotation pairs divide into {total} equal parts"
        )
    return tuple(n_pairs * int(s) // total for s in axis_split)


def pair_layout(pairs: Sequence[int], layout: str) -> tuple[list[int], list[int]]:
    """For each rotation pair of the head: its axis and its frequency index k within that axis."""
    axis, index = [], []
    if layout == "blocked":
        for a, n in enumerate(pairs):
            axis += [a] * n
            index += list(range(n))
    elif layout == "interleaved":
        taken = [0] * len(pairs)
        while any(t < n for t, n in zip(taken, pairs, strict=True)):
            for a, n in enumerate(pairs):
                if taken[a] < n:
                    axis.append(a)
                    index.append(taken[a])
                    taken[a] += 1
    else:
        raise ValueError(f"rope layout must be 'interleaved' or 'blocked', got {layout!r}")
    return axis, index


# -- frequencies -----------------------------------------------------------------------------------------
def base_frequencies(k: Tensor, d_axis: Tensor, theta: float | Tensor) -> Tensor:
    """``w_k = theta^(-2k / d_a)`` in fp32 (``theta`` may be a tensor broadcastable against ``k``)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    return torch.pow(theta, -2.0 * k.double() / d_axis.double()).float()


def scaled_frequencies(
    k: Tensor,
    d_axis: Tensor,
    scale: Tensor,
    theta: float,
    scaling: RopeScaling,
    head_dim: int,
    t: Tensor | None = None,
    train_extent: Tensor | None = None,
) -> Tensor:
    """(B, P) frequencies of every rotation pair under ``scaling`` (its registered rule).

    Args:
        k, d_axis: (P,) frequency index and rotary width ``d_a`` of the pair's axis.
        scale: (B, P) scale factor of the pair's axis, per sample.
        t: (B,) flow time, needed by the time-aware kinds.
        train_extent: (P,) training extent of the pair's axis (frequency-aware scaling).
    """
    rule = scaling.rule
    if rule.needs_extent and train_extent is None:
        raise ValueError(
            f"{scaling.kind} RoPE scaling needs AdapterSpec.train_extent (the training length per axis)"
        )
    if rule.needs_time and t is None:
        raise ValueError(f"RoPE scaling {scaling.kind!r} needs the flow time t")
    t_col = None if t is None else t.float().reshape(-1, 1).to(scale.device)  # (B, 1)
    return rule.frequencies(FrequencyInputs(k, d_axis, scale, float(theta), head_dim, t_col, train_extent))


def _ntk(k: Tensor, d_axis: Tensor, scale: Tensor, theta: float, mode: str) -> Tensor:
    """NTK-aware frequencies for (B, P) scales: ``theta' = theta * s`` or ``theta * s^(d_a / (d_a - 2))``."""
    s = scale.double()
    if mode == "linear":
        new_theta = theta * s
    else:
        new_theta = theta * torch.pow(s, d_axis.double()[None] / (d_axis.double()[None] - 2).clamp(min=1))
    return base_frequencies(k[None], d_axis[None], new_theta)


# -- the rotation ----------------------------------------------------------------------------------------
def rope_angles(positions: Tensor, pair_axis: Tensor, freqs: Tensor) -> Tensor:
    """(B, L, P) rotation angles ``p[a(j)] * w_j`` from positions (B, L, A) and freqs (B, P)."""
    pos = positions.float().index_select(-1, pair_axis.to(positions.device))  # (B, L, P)
    return pos * freqs.to(positions.device)[:, None]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the pairs ``(x[j], x[j + P])`` of ``x`` (B, L, H, 2P) by angles with cos/sin (B, L, P).

    Computed in (at least) fp32 with real cos/sin (no complex numbers), returned in ``x``'s dtype. The
    rotation is an orthogonal linear map of ``x``, so its vector-Jacobian product is the inverse rotation
    (angle ``-a``): the backward pass is one more rotation instead of an autograd graph of slices, products
    and a concatenation. (Tables that require gradients, and compiled code, take the plain differentiable path.)
    """
    c, s = cos[:, :, None], sin[:, :, None]  # (B, L, 1, P), broadcast over heads
    if c.requires_grad or s.requires_grad or torch.compiler.is_compiling():  # compiled: the compiler fuses it
        p = x.shape[-1] // 2
        xf = x.to(torch.promote_types(x.dtype, c.dtype))
        x1, x2 = xf[..., :p], xf[..., p:]
        return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).to(x.dtype)
    if not (torch.is_grad_enabled() and x.requires_grad):  # no graph to record: no autograd Function
        return rotate_pairs(x, c, s)
    return _Rotation.apply(x, c, s)


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor, inverse: bool = False) -> Tensor:
    """``x'[j] = x[j] c -/+ x[j+P] s``, ``x'[j+P] = x[j+P] c +/- x[j] s`` (``inverse``: angle ``-a``).

    Written half by half into one fresh tensor (a product and a fused multiply-add per half: two passes over
    ``x`` in all, no concatenation); ``cos``/``sin`` broadcast against either half of ``x``.
    """
    p = x.shape[-1] // 2
    sign = -1.0 if inverse else 1.0
    dtype = torch.promote_types(torch.promote_types(x.dtype, cos.dtype), torch.float32)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    x1, x2 = x[..., :p], x[..., p:]
    o1, o2 = out[..., :p], out[..., p:]
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-sign)
    torch.mul(x2, cos, out=o2).addcmul_(x1, sin, value=sign)
    return out.to(x.dtype)


class _Rotation(torch.autograd.Function):
    """RoPE with its exact backward: ``grad_x = R(-a) grad_out`` (rotations are orthogonal)."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(cos, sin)
        return rotate_pairs(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        cos, sin = ctx.saved_tensors
        return rotate_pairs(grad, cos, sin, inverse=True), None, None


class NDRope(torch.nn.Module):
    """RoPE tables for one modality: axis split, layout and base from its :class:`AdapterSpec`.

    ``forward`` returns ``(cos, sin)`` of shape (B, L, head_dim / 2) in fp32 and the per-sample
    proportional-attention factor (B,) or None. ``num_axes == 0`` means no RoPE (returns None tables).
    """

    def __init__(
        self,
        head_dim: int,
        axis_split: Sequence[int],
        layout: str = "interleaved",
        theta: float = 10000.0,
        train_extent: Sequence[float] | None = None,
        pairs: Sequence[int] | None = None,
    ) -> None:
        """``pairs``: rotation pairs per axis, given explicitly (they must add up to ``head_dim / 2``);
        None shares the pairs in the ratios of ``axis_split`` (:func:`axis_pairs`)."""
        super().__init__()
        self.head_dim = head_dim
        self.theta = float(theta)
        if pairs is None:
            self.num_axes = len(axis_split)
            self.pairs = axis_pairs(head_dim, axis_split)
        else:
            self.pairs = tuple(int(n) for n in pairs)
            self.num_axes = len(self.pairs)
            if sum(self.pairs) != head_dim // 2 or any(n <= 0 for n in self.pairs):
                raise ValueError(
                    f"RoPE pairs {self.pairs} must be positive and add up to head_dim / 2 = {head_dim // 2}"
                )
        self.train_extent = None if train_extent is None else tuple(float(e) for e in train_extent)
        if self.train_extent is not None and len(self.train_extent) != self.num_axes:
            raise ValueError(
                f"train_extent must give one extent per RoPE axis ({self.num_axes}); got {self.train_extent}"
            )
        self.layout = layout
        pair_layout(self.pairs, layout)  # validates the layout name
        for name in ("pair_axis", "pair_k", "pair_d"):  # pair -> axis, frequency index k, axis width d_a
            self.register_buffer(name, None, persistent=False)
        self.rebuild_tables(None)

    def rebuild_tables(self, device: torch.device | str | None = "cpu") -> None:
        """Recompute the (non-persistent) pair tables, e.g. after building the model on the meta device."""
        axis, k = pair_layout(self.pairs, self.layout)
        self.pair_axis = torch.tensor(axis, dtype=torch.long, device=device)
        self.pair_k = torch.tensor(k, dtype=torch.long, device=device)
        self.pair_d = torch.tensor([2 * self.pairs[a] for a in axis], dtype=torch.long, device=device)

    def axis_scale(self, positions: Tensor, mask: Tensor, scaling: RopeScaling) -> Tensor:
        """(B, A) scale factor per sample and axis (explicit, or derived from the training extent)."""
        b, a = positions.shape[0], self.num_axes
        if scaling.scale is not None:
            s = (scaling.scale,) * a if isinstance(scaling.scale, (int, float)) else tuple(scaling.scale)
            if len(s) != a:
                raise ValueError(
                    f"RopeScaling.scale must give one factor per axis ({a}); got {scaling.scale!r}"
                )
            return torch.tensor(s, dtype=torch.float32, device=positions.device).expand(b, a)
        if scaling.kind == "none":
            return positions.new_ones(b, a, dtype=torch.float32)
        if self.train_extent is None:
            raise ValueError(
                f"RopeScaling(kind={scaling.kind!r}, scale=None) derives the scale from AdapterSpec.train_extent, "
                "which this task does not set; give RopeScaling.scale explicitly"
            )
        train = torch.tensor(self.train_extent, dtype=torch.float32, device=positions.device)
        extent = sample_extent(positions, mask)  # (B, A)
        if scaling.scale_mode == "area":
            s = torch.sqrt(extent.prod(-1, keepdim=True) / train.prod()).expand(b, a)
        else:
            s = extent / train
        return s if scaling.shrink else s.clamp(min=1.0)

    def forward(
        self,
        positions: Tensor,
        mask: Tensor,
        t: Tensor | None = None,
        scaling: RopeScaling | None = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        if positions.shape[-1] != self.num_axes:
            raise ValueError(
                f"positions must have {self.num_axes} axes for this task's RoPE; got {positions.shape[-1]}"
            )
        scaling = scaling or RopeScaling()
        prop = self.proportional_factor(mask, scaling)
        if self.num_axes == 0:
            return None, None, prop
        cos, sin = self.tables(positions, self.frequencies(positions, mask, t, scaling))
        return cos, sin, prop

    def frequencies(
        self, positions: Tensor, mask: Tensor, t: Tensor | None, scaling: RopeScaling | None
    ) -> Tensor:
        """(B, P) frequency of every rotation pair for this batch (scaled as ``scaling`` says)."""
        scaling = scaling or RopeScaling()
        scale = self.axis_scale(positions, mask, scaling).index_select(-1, self.pair_axis)  # (B, P)
        extent = None
        if self.train_extent is not None:
            extent = torch.tensor(self.train_extent, device=positions.device).index_select(0, self.pair_axis)
        return scaled_frequencies(
            self.pair_k, self.pair_d, scale, self.theta, scaling, self.head_dim, t=t, train_extent=extent
        )

    def key_tables(
        self,
        key_positions: Tensor,
        positions: Tensor,
        mask: Tensor,
        t: Tensor | None,
        scaling: RopeScaling | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """(cos, sin) at ``key_positions`` (e.g. pooled keys) with the frequencies of the batch's tokens."""
        if self.num_axes == 0:
            return None, None
        return self.tables(key_positions, self.frequencies(positions, mask, t, scaling))

    def tables(self, positions: Tensor, freqs: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin), each (B, L, P), of positions (B, L, A) at frequencies (B, P)."""
        angles = rope_angles(positions, self.pair_axis, freqs)  # (B, L, P)
        return torch.cos(angles), torch.sin(angles)

    def proportional_factor(self, mask: Tensor, scaling: RopeScaling) -> Tensor | None:
        """(B,) ``sqrt(log N / log N_train)`` per sample, or None when proportional attention is off."""
        if not scaling.proportional_attention:
            return None
        n_train = scaling.train_tokens
        if n_train is None:
            if self.train_extent is None:
                raise ValueError(
                    "proportional attention needs RopeScaling.train_tokens or AdapterSpec.train_extent"
                )
            n_train = math.prod(self.train_extent)
        if n_train <= 1:
            raise ValueError(f"proportional attention needs more than one training token; got {n_train}")
        n = mask.sum(-1).float()
        return torch.sqrt(torch.log(n) / math.log(n_train))


def sample_extent(positions: Tensor, mask: Tensor) -> Tensor:
    """(B, A) extent ``max - min + 1`` of each sample's real positions on each axis."""
    m = mask[..., None]
    big = torch.finfo(torch.float32).max
    hi = torch.where(m, positions.float(), -big).amax(1)
    lo = torch.where(m, positions.float(), big).amin(1)
    return hi - lo + 1

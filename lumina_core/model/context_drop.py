"""Time-aware context drop: self-attention reads average-pooled keys and values of grid tokens.

Lumina-Next's inference speed-up. In a layer that drops context, the keys and values of the grid tokens are
average-pooled over cells of ``r_a`` tokens along each position axis ``a``; the queries stay at full
resolution, so every token still gets its own output (no token merging and unmerging as in ToMe):

    cell(i)   = floor((p_i - p_min) / r)                 (per axis; p_min: the sample's smallest position)
    k_c       = mean_{i in c} k_i,   v_c = mean_{i in c} v_i      (keys before RoPE, real tokens only)
    p_c       = mean_{i in c} p_i                                  (the cell's position, for the keys' RoPE)
    o_i       = softmax_c(RoPE(q_i, p_i) . RoPE(k_c, p_c) / sqrt(d)) v_c

so attention costs ``L * L / prod(r)`` instead of ``L * L``. Padding tokens belong to no cell; a cell holds
only real tokens, and cells a sample does not have are masked. The rotation of a pooled key uses the same
(possibly scaled) frequencies as the full-resolution keys, only at the cell's mean position.

Time-aware schedule (flow time ``t``: 0 noise, 1 data): the paper drops context everywhere at t = 0, where
only the global layout is being decided, and nowhere at t = 1, where fine detail is. With ``n`` eligible
layers (``layers``, default all) and ``T = until``:

* ``schedule="layers"`` (default): eligible layer number ``j = 0 .. n - 1`` drops while ``t < T (n - j) / n``,
  so all of them drop at t = 0, the deepest stops first and none drops once ``t >= T``;
* ``schedule="all"``: every eligible layer drops while ``t < T``.

A task without position axes (``num_axes == 0``) is untouched. Cross-attention (captions) is never pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lumina_core.model.rope import apply_rope
from lumina_core.model.sdpa import sdpa

SCHEDULES = ("layers", "all")


@dataclass(frozen=True)
class ContextDrop:
    """How self-attention pools keys and values, and when.

    Attributes:
        factor: pooling factor per position axis: one int for every axis, or one per axis (1 keeps an axis
            at full resolution). ``2`` on an image pools 2x2 patches: 4x fewer keys (75 % dropped).
        until: no layer drops once ``t >= until`` (flow time; 1.0: drop over the whole range except t = 1).
        schedule: ``"layers"`` (fewer layers drop as t grows) or ``"all"`` (every eligible layer drops while
            ``t < until``); see the module docstring.
        layers: indices of the layers that may drop (None: every layer; negative indices count from the end).
    """

    factor: int | tuple[int, ...] = 2
    until: float = 1.0
    schedule: str = "layers"
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        problems = []
        factors = (self.factor,) if isinstance(self.factor, int) else tuple(self.factor)
        if not factors or any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in factors):
            problems.append(f"factor must be a positive int or one positive int per axis, got {self.factor!r}")
        if not 0.0 <= float(self.until) <= 1.0:
            problems.append(f"until must be a flow time in [0, 1], got {self.until!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.layers is not None and any(not isinstance(i, int) for i in self.layers):
            problems.append(f"layers must be a list of layer indices, got {self.layers!r}")
        if problems:
            raise ValueError("invalid context_drop: " + "; ".join(problems))

    @classmethod
    def build(cls, value: ContextDrop | dict | None) -> ContextDrop | None:
        """Accept a ContextDrop, a recipe mapping ``{factor: 2, until: 1.0, ...}`` or None."""
        if value is None or isinstance(value, ContextDrop):
            return value
        if not hasattr(value, "keys"):
            raise ValueError(f"context_drop must be a mapping such as {{factor: 2}}; got {value!r}")
        params = dict(value)
        for key in ("factor", "layers"):
            if isinstance(params.get(key), list | tuple):
                params[key] = tuple(int(v) for v in params[key])
        return cls(**params)

    def factors(self, num_axes: int) -> tuple[int, ...]:
        """One pooling factor per axis."""
        if isinstance(self.factor, int):
            return (self.factor,) * num_axes
        if len(self.factor) != num_axes:
            raise ValueError(
                f"context_drop.factor must give one factor per position axis ({num_axes}); got {self.factor!r}"
            )
        return tuple(self.factor)

    def dropping_layers(self, n_layers: int, t: float) -> list[int]:
        """Indices of the layers that drop context at flow time ``t``."""
        eligible = list(range(n_layers)) if self.layers is None else sorted({i % n_layers for i in self.layers})
        n = len(eligible)
        if self.schedule == "all":
            return eligible if t < self.until else []
        return [layer for j, layer in enumerate(eligible) if t < self.until * (n - j) / n]


# -- the pooling plan, built once per forward ------------------------------------------------------------
@dataclass
class PoolPlan:
    """Which pooled slot each token's key/value goes to, for one token batch.

    Attributes:
        index: (B * L,) long, the flat pooled slot ``b * Lk + c`` of each token; padding goes to the spare
            slot ``B * Lk`` that is dropped after pooling.
        inv_count: (B * Lk, 1) ``1 / members`` of each slot (0 for an empty slot).
        slot_mask: (B, Lk) bool, True for slots that hold at least one real token.
        positions: (B, Lk, A) mean position of each slot.
    """

    index: Tensor
    inv_count: Tensor
    slot_mask: Tensor
    positions: Tensor
    batch: int
    slots: int

    def pool(self, x: Tensor) -> Tensor:
        """(B, L, ...) -> (B, Lk, ...): the mean of each slot's real tokens (differentiable)."""
        b, n = x.shape[:2]
        rest = x.shape[2:]
        flat = x.reshape(b * n, -1)
        out = flat.new_zeros(self.batch * self.slots + 1, flat.shape[1]).index_add_(0, self.index, flat)
        out = out[:-1].mul_(self.inv_count.to(out.dtype))
        return out.view(self.batch, self.slots, *rest)


def pool_plan(positions: Tensor, mask: Tensor, factors: Sequence[int]) -> PoolPlan:
    """Group each sample's real tokens into cells of ``factors`` positions per axis (see the module doc).

    Cells are numbered per sample in row-major order of the cell grid, and only the cells a sample occupies
    become slots (so samples of different shapes in one batch waste no keys).
    """
    b, n, a = positions.shape
    device = positions.device
    r = torch.tensor([float(f) for f in factors], device=device)
    pos = positions.float()
    big = torch.finfo(torch.float32).max
    m = mask[..., None]
    lo = torch.where(m, pos, big).amin(1, keepdim=True)  # (B, 1, A)
    cell = torch.where(m, torch.floor((pos - lo) / r), 0.0).long()  # (B, L, A)
    dims = (cell.amax(dim=(0, 1)) + 1).tolist()  # cells per axis, over the whole batch
    flat = torch.zeros(b, n, dtype=torch.long, device=device)
    for axis in range(a):
        flat = flat * int(dims[axis]) + cell[..., axis]
    dense = 1
    for d in dims:
        dense *= int(d)
    # occupied dense cells -> consecutive slots, per sample
    occupied = torch.zeros(b, dense, dtype=torch.long, device=device)
    occupied.scatter_add_(1, torch.where(mask, flat, 0), mask.long())
    has = occupied > 0
    slot_of_cell = torch.cumsum(has.long(), dim=1) - 1  # (B, dense)
    slots = max(int(has.sum(1).max()), 1)
    slot = slot_of_cell.gather(1, flat)  # (B, L)
    rows = torch.arange(b, device=device)[:, None]
    index = torch.where(mask, rows * slots + slot, b * slots).reshape(-1)
    count = torch.zeros(b * slots + 1, device=device).index_add_(0, index, torch.ones(b * n, device=device))
    count = count[:-1]
    inv = torch.where(count > 0, 1.0 / count.clamp(min=1), 0.0)[:, None]
    plan = PoolPlan(index, inv, (count > 0).view(b, slots), torch.empty(0), b, slots)
    plan.positions = plan.pool(torch.where(m, pos, 0.0))
    return plan


@dataclass
class DropPlan:
    """Everything the attention layers need to drop context in one forward pass.

    Attributes:
        pool: the token -> slot grouping.
        cos, sin: (B, Lk, head_dim / 2) RoPE tables of the slots' positions (same frequencies as the tokens).
        key_mask: (B, 1, 1, Lk) bool, or None when every slot is real.
        rows: per layer, None (no sample drops), "all", or a (k,) long tensor of the samples that drop.
    """

    pool: PoolPlan
    cos: Tensor | None
    sin: Tensor | None
    key_mask: Tensor | None
    rows: list[object] = field(default_factory=list)

    def for_layer(self, layer: int) -> LayerDrop | None:
        rows = self.rows[layer] if layer < len(self.rows) else None
        return None if rows is None else LayerDrop(self, rows)


@dataclass
class LayerDrop:
    """One layer's share of a :class:`DropPlan`: which samples attend to pooled keys."""

    plan: DropPlan
    rows: object  # "all" or a (k,) long tensor

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cos: Tensor | None,
        sin: Tensor | None,
        key_mask: Tensor | None,
        gqa: bool,
    ) -> Tensor:
        """Self-attention with pooled context.

        q (B, H, L, hd) already rotated (and scaled); k, v (B, L, Hkv, hd) with k *not* rotated; cos/sin the
        tokens' tables; key_mask the tokens' (B, 1, 1, L) mask or None. Returns (B, H, L, hd).
        """
        plan = self.plan
        kp = plan.pool.pool(k)  # (B, Lk, Hkv, hd)
        vp = plan.pool.pool(v)
        if plan.cos is not None:
            kp = apply_rope(kp, plan.cos, plan.sin)
        kp, vp = kp.transpose(1, 2), vp.transpose(1, 2)  # (B, Hkv, Lk, hd)
        if isinstance(self.rows, str):  # every sample drops
            return sdpa(q, kp, vp, attn_mask=plan.key_mask, enable_gqa=gqa)
        # some samples drop, the others attend to every token: two calls, results scattered back
        rows = self.rows
        keep = torch.ones(q.shape[0], dtype=torch.bool, device=q.device)
        keep[rows] = False
        full = keep.nonzero().squeeze(1)
        out = torch.empty_like(q)
        pm = None if plan.key_mask is None else plan.key_mask[rows]
        out[rows] = sdpa(q[rows], kp[rows], vp[rows], attn_mask=pm, enable_gqa=gqa)
        kf = k[full] if cos is None else apply_rope(k[full], cos[full], sin[full])
        fm = None if key_mask is None else key_mask[full]
        out[full] = sdpa(
            q[full], kf.transpose(1, 2), v[full].transpose(1, 2), attn_mask=fm, enable_gqa=gqa
        )
        return out


def drop_plan(
    drop: ContextDrop,
    positions: Tensor,
    mask: Tensor,
    t: Tensor,
    n_layers: int,
    rope_tables: Callable[[Tensor], tuple[Tensor | None, Tensor | None]],
) -> DropPlan | None:
    """The plan for one forward pass, or None when no layer drops for any sample (or there is no grid).

    ``rope_tables(slot_positions)`` returns the RoPE (cos, sin) of the slots with the tokens' frequencies.
    """
    num_axes = positions.shape[-1]
    if num_axes == 0:
        return None
    factors = drop.factors(num_axes)
    times = t.detach().float().cpu().tolist()
    per_sample = [set(drop.dropping_layers(n_layers, ti)) for ti in times]
    if not any(per_sample):
        return None
    rows: list[object] = []
    for layer in range(n_layers):
        who = [i for i, s in enumerate(per_sample) if layer in s]
        if not who:
            rows.append(None)
        elif len(who) == len(times):
            rows.append("all")
        else:
            rows.append(torch.tensor(who, dtype=torch.long, device=positions.device))
    pool = pool_plan(positions, mask, factors)
    cos, sin = rope_tables(pool.positions)
    key_mask = None if bool(pool.slot_mask.all()) else pool.slot_mask[:, None, None, :]
    return DropPlan(pool, cos, sin, key_mask, rows)

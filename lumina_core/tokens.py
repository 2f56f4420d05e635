"""Token batches: the one data type that flows between modality plugins and the trunk.

A plugin turns a list of samples into a :class:`TokenBatch` and back. Samples of different sizes are
right-padded to the longest sequence; ``mask`` is True for real tokens. ``positions`` holds coordinates on
``A`` axes (image: (h, w); video: (t, h, w); audio: (time, freq); point clouds may use A = 0), consumed by
N-D RoPE. ``shapes`` holds, per sample, whatever the plugin needs to undo the tokenization (grid size,
number of points, ...). The trunk never looks at ``shapes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor


@dataclass
class TokenBatch:
    """A right-padded batch of token sequences.

    Attributes:
        tokens: (B, L, D) float tensor, one row per patch / frame-patch / mel-patch / point.
        positions: (B, L, A) float tensor of coordinates on A axes (A may be 0).
        mask: (B, L) bool tensor, True for real tokens.
        shapes: per-sample metadata needed to detokenize (e.g. ``(H_patches, W_patches)``).
        meta: free-form per-batch metadata owned by the plugin (never read by the core).
        token_cond: (B, L, Dk) float per-token conditioning that is given, never generated (e.g. camera rays
            of each patch), or None. The adapter embeds it and adds it to the token embedding when its
            ``AdapterSpec.token_cond_dim`` is Dk; objectives and samplers change ``tokens`` only, so it rides
            along unchanged (``with_tokens`` keeps it).
        given: (B, L) bool, True for tokens whose values are given rather than generated (e.g. the views of a
            condition image), or None. The flow objective keeps them at their data values at every time and
            leaves them out of the loss; generation starts them at the layout's values and holds them there.
            The model learns which tokens are given only from what the plugin tells it (``token_cond``).
    """

    tokens: Tensor
    positions: Tensor
    mask: Tensor
    shapes: list[tuple[int, ...]]
    meta: dict[str, Any] = field(default_factory=dict)
    token_cond: Tensor | None = None
    given: Tensor | None = None

    def __post_init__(self) -> None:
        if self.tokens.dim() != 3:
            raise ValueError(f"TokenBatch.tokens must be (B, L, D); got shape {tuple(self.tokens.shape)}")
        b, n = self.tokens.shape[:2]
        if self.positions.dim() != 3 or tuple(self.positions.shape[:2]) != (b, n):
            raise ValueError(
                f"TokenBatch.positions must be (B, L, A) = ({b}, {n}, A); got {tuple(self.positions.shape)}"
            )
        if tuple(self.mask.shape) != (b, n) or self.mask.dtype != torch.bool:
            raise ValueError(
                f"TokenBatch.mask must be a bool tensor of shape ({b}, {n}); "
                f"got {self.mask.dtype} {tuple(self.mask.shape)}"
            )
        if len(self.shapes) != b:
            raise ValueError(f"TokenBatch.shapes must have one entry per sample ({b}); got {len(self.shapes)}")
        if self.token_cond is not None and (
            self.token_cond.dim() != 3 or tuple(self.token_cond.shape[:2]) != (b, n)
        ):
            raise ValueError(
                f"TokenBatch.token_cond must be (B, L, Dk) = ({b}, {n}, Dk); got {tuple(self.token_cond.shape)}"
            )
        if self.given is not None and (tuple(self.given.shape) != (b, n) or self.given.dtype != torch.bool):
            raise ValueError(
                f"TokenBatch.given must be a bool tensor of shape ({b}, {n}); "
                f"got {self.given.dtype} {tuple(self.given.shape)}"
            )

    # -- sizes -------------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    @property
    def dim(self) -> int:
        return self.tokens.shape[2]

    @property
    def num_axes(self) -> int:
        return self.positions.shape[2]

    @property
    def lengths(self) -> Tensor:
        """(B,) number of real tokens per sample."""
        return self.mask.sum(dim=1)

    # -- transforms --------------------------------------------------------------------------------------
    def with_tokens(self, tokens: Tensor) -> TokenBatch:
        """Same layout (positions, mask, shapes), new token values; the width D may change."""
        if tuple(tokens.shape[:2]) != tuple(self.tokens.shape[:2]):
            raise ValueError(
                f"with_tokens expects (B, L, *) = {tuple(self.tokens.shape[:2])}; got {tuple(tokens.shape)}"
            )
        return replace(self, tokens=tokens)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TokenBatch:
        """Move to a device; ``dtype`` applies to ``tokens`` only (positions stay float32)."""
        return replace(
            self,
            tokens=self.tokens.to(device=device, dtype=dtype),
            positions=self.positions.to(device=device),
            mask=self.mask.to(device=device),
            token_cond=None if self.token_cond is None else self.token_cond.to(device=device),
            given=None if self.given is None else self.given.to(device=device),
        )

    def select(self, index: Sequence[int] | Tensor) -> TokenBatch:
        """Sub-batch of the given sample indices, trimmed to its longest sequence."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.tokens.device)
        mask = self.mask[idx]
        keep = int(mask.sum(dim=1).max().item()) if mask.numel() else 0
        return TokenBatch(
            tokens=self.tokens[idx, :keep],
            positions=self.positions[idx, :keep],
            mask=mask[:, :keep],
            shapes=[self.shapes[i] for i in idx.tolist()],
            meta=dict(self.meta),
            token_cond=None if self.token_cond is None else self.token_cond[idx, :keep],
            given=None if self.given is None else self.given[idx, :keep],
        )

    def repeat(self, n: int) -> TokenBatch:
        """``n`` copies of the batch one after another on the batch axis, every field kept (per-sample tensors
        and ``shapes`` repeated, ``meta`` shared): classifier-free guidance runs its conditional and
        unconditional halves as ``batch.repeat(2)`` in one model call."""
        if int(n) < 1:
            raise ValueError(f"repeat needs n >= 1; got {n}")

        def copies(value: Any) -> Any:
            if isinstance(value, Tensor):
                return torch.cat([value] * int(n))
            if isinstance(value, list):
                return list(value) * int(n)
            return dict(value) if isinstance(value, dict) else value  # meta (per batch) and None

        return TokenBatch(**{f.name: copies(getattr(self, f.name)) for f in fields(self)})

    def unpad(self) -> list[tuple[Tensor, Tensor]]:
        """Per-sample ``(tokens (L_i, D), positions (L_i, A))`` without padding (real tokens come first)."""
        out = []
        for i, n in enumerate(self.lengths.tolist()):
            out.append((self.tokens[i, :n], self.positions[i, :n]))
        return out

    @staticmethod
    def from_sequences(
        tokens: Sequence[Tensor],
        positions: Sequence[Tensor],
        shapes: Sequence[tuple[int, ...]],
        meta: dict[str, Any] | None = None,
        pad_to: int | None = None,
        token_cond: Sequence[Tensor] | None = None,
        given: Sequence[Tensor] | None = None,
    ) -> TokenBatch:
        """Right-pad per-sample ``tokens[i]`` (L_i, D) and ``positions[i]`` (L_i, A) into one batch.

        Padded token rows are zero (the trunk replaces them by the adapter's learnable pad token); padded
        positions are zero. ``token_cond[i]`` (L_i, Dk), if given, is padded the same way; ``given[i]`` (L_i,)
        bool marks sample i's given tokens (padding is never given).
        """
        if not (len(tokens) == len(positions) == len(shapes)) or len(tokens) == 0:
            raise ValueError(
                "from_sequences needs the same non-zero number of tokens, positions and shapes; "
                f"got {len(tokens)}, {len(positions)}, {len(shapes)}"
            )
        dims = {t.shape[-1] for t in tokens}
        axes = {p.shape[-1] for p in positions}
        if len(dims) != 1 or len(axes) != 1:
            raise ValueError(f"all samples must share the token width and axis count; got D={dims}, A={axes}")
        for i, (t, p) in enumerate(zip(tokens, positions, strict=True)):
            if t.dim() != 2 or p.dim() != 2 or t.shape[0] != p.shape[0]:
                raise ValueError(
                    f"sample {i}: expected tokens (L, D) and positions (L, A) with equal L; "
                    f"got {tuple(t.shape)} and {tuple(p.shape)}"
                )
        length = max(t.shape[0] for t in tokens)
        if pad_to is not None:
            if pad_to < length:
                raise ValueError(f"pad_to={pad_to} is shorter than the longest sample ({length})")
            length = pad_to
        b, d, a = len(tokens), dims.pop(), axes.pop()
        ref = tokens[0]
        out_t = ref.new_zeros(b, length, d)
        out_p = torch.zeros(b, length, a, dtype=torch.float32, device=ref.device)
        mask = torch.zeros(b, length, dtype=torch.bool, device=ref.device)
        for i, (t, p) in enumerate(zip(tokens, positions, strict=True)):
            n = t.shape[0]
            out_t[i, :n] = t
            out_p[i, :n] = p.to(torch.float32)
            mask[i, :n] = True
        out_c = None
        if token_cond is not None:
            bad = len(token_cond) != b or any(
                c.dim() != 2 or c.shape[0] != t.shape[0] for c, t in zip(token_cond, tokens, strict=False)
            )
            if bad:
                raise ValueError(
                    "token_cond must give one (L_i, Dk) tensor per sample, L_i as in tokens; got "
                    f"{[tuple(c.shape) for c in token_cond]} for tokens {[tuple(t.shape) for t in tokens]}"
                )
            out_c = ref.new_zeros(b, length, token_cond[0].shape[-1])
            for i, c in enumerate(token_cond):
                out_c[i, : c.shape[0]] = c
        out_g = None
        if given is not None:
            if len(given) != b or any(g.shape != (t.shape[0],) for g, t in zip(given, tokens, strict=False)):
                raise ValueError(
                    "given must give one (L_i,) bool tensor per sample, L_i as in tokens; got "
                    f"{[tuple(g.shape) for g in given]} for tokens {[tuple(t.shape) for t in tokens]}"
                )
            out_g = torch.zeros(b, length, dtype=torch.bool, device=ref.device)
            for i, g in enumerate(given):
                out_g[i, : g.shape[0]] = g.to(torch.bool)
        return TokenBatch(out_t, out_p, mask, [tuple(s) for s in shapes], dict(meta or {}), out_c, out_g)


@dataclass
class Condition:
    """Encoded conditioning for a batch: context tokens (caption features, class embeddings, cameras...).

    Attributes:
        context: (B, Lc, Dc) float features, or None for an unconditional model.
        mask: (B, Lc) bool, True for valid context tokens, or None (all valid).
        extra: plugin-specific extra conditioning tensors (e.g. camera poses), keyed by name.
    """

    context: Tensor | None = None
    mask: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.context is not None:
            if self.context.dim() != 3:
                raise ValueError(f"Condition.context must be (B, Lc, Dc); got {tuple(self.context.shape)}")
            if self.mask is None:
                self.mask = torch.ones(self.context.shape[:2], dtype=torch.bool, device=self.context.device)
            elif tuple(self.mask.shape) != tuple(self.context.shape[:2]):
                raise ValueError(
                    f"Condition.mask must be {tuple(self.context.shape[:2])}; got {tuple(self.mask.shape)}"
                )

    @property
    def batch_size(self) -> int | None:
        return None if self.context is None else self.context.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Condition:
        ctx = None if self.context is None else self.context.to(device=device, dtype=dtype)
        msk = None if self.mask is None else self.mask.to(device=device)
        return Condition(ctx, msk, {k: v.to(device=device) for k, v in self.extra.items()})

    def select(self, index: Sequence[int] | Tensor) -> Condition:
        if self.context is None:
            return Condition(None, None, {})
        idx = torch.as_tensor(index, dtype=torch.long, device=self.context.device)
        return Condition(self.context[idx], self.mask[idx], {k: v[idx] for k, v in self.extra.items()})

    @staticmethod
    def cat(conds: Sequence[Condition]) -> Condition:
        """Concatenate along the batch, right-padding context tokens to the longest (mask False)."""
        if all(c.context is None for c in conds):
            return Condition()
        if any(c.context is None for c in conds):
            raise ValueError("cannot concatenate conditioned and unconditioned Condition objects")
        lc = max(c.context.shape[1] for c in conds)
        ctxs, masks = [], []
        for c in conds:
            pad = lc - c.context.shape[1]
            ctxs.append(torch.nn.functional.pad(c.context, (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(c.mask, (0, pad), value=False))
        extra = {k: torch.cat([c.extra[k] for c in conds]) for k in conds[0].extra}
        return Condition(torch.cat(ctxs), torch.cat(masks), extra)

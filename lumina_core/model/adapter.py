"""The per-task adapter around the shared trunk: everything that depends on the modality.

    x      = W_x tokens + b                                  (in_dim -> dim)
    x[i]   = pad_token  wherever mask[i] is False            (padding never depends on what the plugin put there)
    out    = Linear(LayerNorm(h) * (1 + Linear(SiLU(c))))    (final layer; LayerNorm without affine, eps 1e-6)

    x     += MLP(token_cond)                                 (only when spec.token_cond_dim > 0: per-token
                                                             conditioning such as camera rays; last layer zero-init)
    y      = W_y context + b_y                               (only when the task's conditioner width differs from
                                                             the trunk's context_dim: one trunk, many conditioners)

plus the task's RoPE tables (axis split, layout, base, training extent) from its :class:`AdapterSpec`.

The final layer's outputs span at most ``dim`` directions of the ``out_dim``-wide token space. When
``out_dim > dim`` (wide tokens on a narrow trunk) the predicted velocity can never move the component of the
initial noise outside that subspace, so every generated sample keeps noise there; building such an adapter
warns (:class:`RankDeficientOutputWarning`). Use smaller patches or a wider trunk.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from lumina_core.model.masks import all_true
from lumina_core.model.rope import NDRope
from lumina_core.plugin import AdapterSpec


class RankDeficientOutputWarning(UserWarning):
    """A task's tokens are wider than the trunk: its velocity field cannot span the token space."""


class FinalLayer(nn.Module):
    def __init__(self, dim: int, cond_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, dim))
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        scale = self.adaLN_modulation(c)[:, None]  # (B, 1, dim)
        return self.linear(self.norm_final(h) * (1 + scale))


def spec_rope(spec: AdapterSpec, head_dim: int) -> NDRope:
    """The RoPE tables of a task on its own axes: ``spec.axis_split`` of the head, ``spec.rope_layout``."""
    return NDRope(
        head_dim,
        spec.axis_split if spec.num_axes else (),
        spec.rope_layout,
        spec.rope_theta,
        spec.train_extent if spec.num_axes else None,
    )


class ModalityAdapter(nn.Module):
    def __init__(
        self,
        spec: AdapterSpec,
        dim: int,
        cond_dim: int,
        head_dim: int,
        context_in: int | None = None,
        context_out: int | None = None,
        rope: NDRope | None = None,
    ) -> None:
        """``rope``: the task's RoPE tables as the trunk family lays them out (:meth:`Trunk.task_rope`); None
        builds them from the spec alone (the ``next_dit`` layout)."""
        super().__init__()
        if spec.out_dim > dim:
            warnings.warn(
                f"task tokens are wider than the trunk: out_dim={spec.out_dim} > dim={dim}; the final layer's "
                f"output spans at most {dim} of {spec.out_dim} directions, so noise outside that subspace is never "
                "removed at generation. Use smaller patches (fewer values per token) or a wider trunk.",
                RankDeficientOutputWarning,
                stacklevel=3,
            )
        self.spec = spec
        self.x_embedder = nn.Linear(spec.in_dim, dim)
        self.pad_token = nn.Parameter(torch.zeros(dim))
        self.cond_embedder = (
            nn.Sequential(nn.Linear(spec.token_cond_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            if spec.token_cond_dim
            else None
        )
        self.final_layer = FinalLayer(dim, cond_dim, spec.out_dim)
        #: the task's conditioner features (width ``context_in``) projected to the trunk's ``context_out``
        self.context_proj = (
            nn.Linear(context_in, context_out) if context_in and context_out and context_in != context_out else None
        )
        self.rope = rope if rope is not None else spec_rope(spec, head_dim)

    def project_context(self, context: Tensor) -> Tensor:
        """The task's condition features in the trunk's context width (unchanged without a projection)."""
        if self.context_proj is None:
            return context
        return self.context_proj(context.to(self.context_proj.weight.dtype))

    def embed(self, tokens: Tensor, mask: Tensor, token_cond: Tensor | None = None) -> Tensor:
        """(B, L, dim) embedded tokens (plus the embedded per-token conditioning, when the task declares
        one); padded rows replaced by the learnable pad token."""
        if tokens.shape[-1] != self.spec.in_dim:
            raise ValueError(f"tokens must have width in_dim={self.spec.in_dim} for this task; got {tokens.shape[-1]}")
        x = self.x_embedder(tokens.to(self.x_embedder.weight.dtype))
        want = self.spec.token_cond_dim
        got = None if token_cond is None else token_cond.shape[-1]
        if (want or None) != got:
            raise ValueError(
                f"this task's AdapterSpec.token_cond_dim is {want}, but the token batch carries "
                f"{'no token_cond' if got is None else f'token_cond of width {got}'}; the plugin's tokenize and "
                "layout must attach per-token conditioning exactly when its adapter_spec declares it"
            )
        if self.cond_embedder is not None:
            x = x + self.cond_embedder(token_cond.to(x.dtype))
        if all_true(mask):
            return x
        return torch.where(mask[..., None], x, self.pad_token.to(x.dtype))

"""An image-level view of a LuminaModel, with the calling convention of the public image models.

    out = LuminaImageModel(x (B, C, H, W), t (B,) in [0, 1], caption_feats (B, Lc, Dc), caption_mask (B, Lc))
        -> (B, C_out, H, W)

Patches are flattened in (C, ph, pw) order on the way in and, following our convention, read back in
(C, ph, pw) order on the way out (formats that read out in (ph, pw, C) order are permuted at load time).
``t`` is flow time (0 noise, 1 data), exactly what diffusers' ``LuminaNextDiT2DModel`` receives from its
pipeline (the pipeline passes ``1 - sigma``); its output is the velocity ``x1 - x0`` (the pipeline negates it
before its sigma-space scheduler step).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumina_core.grid import grid_positions
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.rope import RopeScaling
from lumina_core.tokens import Condition, TokenBatch

#: the (row, column) patch positions of an (ht, wt) grid: the core's :func:`lumina_core.grid.grid_positions`
patch_positions = grid_positions


class LuminaImageModel(nn.Module):
    """Wraps a :class:`LuminaModel` whose task ``task`` takes ``C * p * p`` patch tokens on (h, w)."""

    def __init__(self, model: LuminaModel, patch_size: int, in_channels: int, task: str = "image") -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.patch_size = patch_size
        self.in_channels = in_channels
        spec = model.adapters[task].spec
        p2 = patch_size * patch_size
        if spec.in_dim != in_channels * p2 or spec.out_dim % p2:
            raise ValueError(
                f"task {task!r} takes {spec.in_dim} and predicts {spec.out_dim} values per token; expected "
                f"in_channels * patch_size^2 = {in_channels * p2} in and a multiple of {p2} out"
            )
        self.out_channels = spec.out_dim // p2

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        caption_feats: Tensor | None = None,
        caption_mask: Tensor | None = None,
        rope_scaling: RopeScaling | dict | str | None = None,
    ) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (B, {self.in_channels}, H, W); got {tuple(x.shape)}")
        b, c, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"H and W must be multiples of the patch size {p}; got {h}x{w}")
        ht, wt = h // p, w // p
        tokens = x.view(b, c, ht, p, wt, p).permute(0, 2, 4, 1, 3, 5).reshape(b, ht * wt, c * p * p)
        positions = grid_positions(ht, wt, device=x.device)[None].expand(b, -1, -1)
        mask = torch.ones(b, ht * wt, dtype=torch.bool, device=x.device)
        batch = TokenBatch(tokens, positions, mask, [(ht, wt)] * b)
        cond = None
        if caption_feats is not None:
            cond = Condition(caption_feats, None if caption_mask is None else caption_mask.bool())
        out = self.model(batch, t, cond, task=self.task, rope_scaling=rope_scaling)  # (B, L, C_out p p)
        co = self.out_channels
        return out.view(b, ht, wt, co, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, co, h, w)

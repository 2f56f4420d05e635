"""The ``pointcloud`` modality: every point is a token.

A cloud of N points, each ``(x, y, z)`` or ``(x, y, z, nx, ny, nz)``, becomes N tokens of width 3 or 6.
Points have no grid, so the plugin gives the trunk no positions at all (``AdapterSpec(num_axes=0)``: no
RoPE). Self-attention without positions is permutation-equivariant, so the model treats a cloud as a set:
permuting the input tokens permutes the predicted velocities the same way (tested).

Each cloud is normalised on the way in (see :mod:`.normalize`); the centre and scale are kept in
``TokenBatch.meta["normalization"]`` so :meth:`PointCloudPlugin.detokenize` restores the original frame.
Generation starts from :meth:`layout`, which carries no normalisation, so generated clouds come back in
the canonical (normalised) frame. Clouds of different sizes are right-padded with a mask, and a trained
model can be asked for any number of points: ``layout([(N', 3)])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import MODALITIES
from lumina_core.tokens import TokenBatch

from .normalize import NORMALIZATIONS, apply_normalization, normalization_params, undo_normalization


@MODALITIES.register("pointcloud")
class PointCloudPlugin(ModalityPlugin):
    """Point clouds as sets of point tokens.

    Args:
        num_points: points per generated cloud by default (:meth:`default_shape`).
        normals: True for 6-wide points (xyz + unit normal), False for xyz only.
        normalization: ``"sphere"`` (unit ball, default), ``"box"`` (``[-1, 1]^3``) or ``"none"``.
        scale: the canonical cloud is multiplied by this before it becomes tokens (and divided on the way
            out). The default 2.0 gives unit-ball clouds a per-coordinate spread close to the N(0, I) noise;
            on shapes_tiny it beat 1.0 clearly (docs/benchmarks.md, point clouds).
        denormalize: detokenize restores each cloud's original centre and scale when the batch carries them.
    """

    name: ClassVar[str] = "pointcloud"
    conditions: ClassVar[frozenset[str]] = frozenset({"class", "text", "none"})
    preview_formats: ClassVar[tuple[str, ...]] = ("ply", "png")
    default_recipe: ClassVar[str | None] = "recipes/pointcloud/shapes_tiny.yaml"

    def __init__(
        self,
        num_points: int = 512,
        normals: bool = False,
        normalization: str = "sphere",
        scale: float = 2.0,
        denormalize: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(
            num_points=num_points,
            normals=normals,
            normalization=normalization,
            scale=scale,
            denormalize=denormalize,
            **params,
        )
        if params:
            raise ValueError(f"pointcloud: unknown parameters {sorted(params)}")
        if num_points <= 0:
            raise ValueError(f"pointcloud: num_points must be positive; got {num_points}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"pointcloud: normalization must be one of {NORMALIZATIONS}; got {normalization!r}"
            )
        if not scale > 0:
            raise ValueError(f"pointcloud: scale must be positive; got {scale}")
        self.num_points = int(num_points)
        self.normals = bool(normals)
        self.normalization = normalization
        self.scale = float(scale)
        self.denormalize = bool(denormalize)
        self.point_dim = 6 if self.normals else 3

    # -- tokens ----------------------------------------------------------------------------------------
    def adapter_spec(self) -> AdapterSpec:
        return AdapterSpec(in_dim=self.point_dim, out_dim=self.point_dim, num_axes=0)

    def _check(self, sample: Tensor, i: int) -> None:
        if not isinstance(sample, Tensor) or sample.dim() != 2 or sample.shape[1] != self.point_dim:
            got = tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__
            raise ValueError(f"pointcloud: sample {i} must be an (N, {self.point_dim}) tensor; got {got}")
        if sample.shape[0] == 0:
            raise ValueError(f"pointcloud: sample {i} has no points")

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        """Normalise each cloud, scale it by ``scale`` and right-pad to the largest: (B, N_max, 3|6)."""
        if len(samples) == 0:
            raise ValueError("pointcloud: tokenize needs at least one sample")
        tokens, positions, norms = [], [], []
        for i, s in enumerate(samples):
            self._check(s, i)
            s = s.float()
            center, scale = normalization_params(s, self.normalization, name=f"sample {i}")
            tok = apply_normalization(s, center, scale)
            tok = torch.cat([tok[:, :3] * self.scale, tok[:, 3:]], dim=1)
            tokens.append(tok)
            positions.append(tok.new_zeros(tok.shape[0], 0))
            norms.append((center, scale))
        return TokenBatch.from_sequences(
            tokens, positions, [self.sample_shape(s) for s in samples], meta={"normalization": norms}
        )

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Real points of each sample, back in the original frame when the batch knows it."""
        norms = batch.meta.get("normalization") if self.denormalize else None
        if norms is not None and len(norms) != batch.batch_size:
            raise ValueError(
                f"pointcloud: the batch carries {len(norms)} normalisations for {batch.batch_size} samples "
                "(a sub-batch of a tokenized batch?); detokenize the whole batch, or drop meta['normalization'] "
                "to get clouds in the canonical frame"
            )
        out = []
        for i, (tok, _) in enumerate(batch.unpad()):
            pts = torch.cat([tok[:, :3] / self.scale, tok[:, 3:]], dim=1)
            if norms is not None:
                pts = undo_normalization(pts, *norms[i])
            out.append(pts)
        return out

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return (int(sample.shape[0]), int(sample.shape[1]))

    def default_shape(self) -> tuple[int, ...]:
        return (self.num_points, self.point_dim)

    def layout(
        self, shapes: Sequence[tuple[int, ...]], device: torch.device | str | None = None
    ) -> TokenBatch:
        """Zero tokens for clouds of the given ``(N, D)`` shapes; any N, also more than seen in training."""
        tokens, positions = [], []
        for i, shape in enumerate(shapes):
            shape = tuple(int(v) for v in shape)
            if len(shape) == 1:
                shape = (shape[0], self.point_dim)
            if len(shape) != 2 or shape[0] <= 0 or shape[1] != self.point_dim:
                raise ValueError(f"pointcloud: layout shape {i} must be (N, {self.point_dim}); got {shape}")
            tokens.append(torch.zeros(shape, device=device))
            positions.append(torch.zeros(shape[0], 0, device=device))
        return TokenBatch.from_sequences(tokens, positions, [tuple(s) for s in shapes])

    # -- people-facing output -------------------------------------------------------------------------
    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        """One ASCII PLY per cloud plus one PNG: three orthographic, depth-shaded views per cloud."""
        from .preview import write_ply, write_views_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [write_ply(s, out / f"{stem}_{i:02d}.ply") for i, s in enumerate(samples)]
        labels = [str(c) if c is not None else "" for c in conditions] if conditions else None
        paths.append(write_views_png(samples, out / f"{stem}.png", labels=labels))
        return paths

    def evaluate(
        self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None
    ) -> dict[str, float]:
        """The dataset's checker when it has one, else the PointFlow metrics against the items' clouds."""
        score = getattr(dataset, "score", None)
        if callable(score):
            return dict(score(samples, items))
        from .evaluation import score_pointclouds

        return score_pointclouds(samples, items, normalization=self.normalization)

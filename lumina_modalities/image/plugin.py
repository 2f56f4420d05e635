"""The image modality: pixel- or latent-space patch tokens on a 2-D RoPE grid.

Pixel space: an image in [-1, 1] of shape (C, H, W) is cut into p x p patches (see :mod:`.patches`).
Latent space: the image first goes through a frozen codec from :data:`CODECS` (default a diffusers
``AutoencoderKL`` from a local path, :mod:`.autoencoder`), ``z = (E(x) - shift) * scale``, and the latent is
patchified. Samples, shapes and previews are always in pixels; only tokens live in latent space. With
``latent_cache`` each image's latent is kept on disk (:mod:`.latent_cache`), so fine-tuning on a folder runs
the encoder once per image rather than once per step.

Positions are the (row, column) patch coordinates; the adapter splits each head's rotary dimension
equally between them with the released interleaved layout, and ``train_extent`` is the patch grid of the
training size, from which RoPE scale factors are derived when generating larger images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import CODECS, MODALITIES
from lumina_core.tokens import TokenBatch

from .folder import IMAGE_EXTENSIONS
from .patches import check_divisible, grid_positions, patchify, unpatchify
from .preview import preview_to_tensorboard, write_image_preview


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (H, W); got {size!r}")
    return size  # type: ignore[return-value]


@MODALITIES.register("image")
class ImagePlugin(ModalityPlugin):
    """Images as patch tokens.

    Args:
        patch_size: patch side p, in pixels (pixel space) or latent cells (latent space).
        channels: image channels C (3 for RGB, 1 for greyscale).
        image_size: default (training) image size in pixels, an int or (H, W).
        autoencoder: a ``{"name": ..., "params": {...}}`` codec from CODECS (e.g. ``autoencoder_kl`` with a
            local ``path``) to work in its latent space; None works in pixel space.
        fid: add an FID-style score (in-project feature network, :mod:`.fid`) to :meth:`evaluate`.
        latent_cache: with an autoencoder, keep each image's latent on disk so it goes through the encoder
            once (:mod:`.latent_cache`): True for ``<cache dir>/latents``, or a folder; False: encode every time.
        read_scale: ``[lo, hi]``: :meth:`read_file` (``lumina predict``) keeps a file at its own size, as a
            multiple ``f`` of ``image_size`` clipped to ``lo <= f <= hi`` (a smaller file is upsampled to
            ``lo x``, a larger one downsampled to ``hi x``); None: every file at ``image_size``. Either way
            the file is resized to cover and centre-cropped to the aspect of ``image_size``.
        rope_layout: how the row and column rotation pairs of a head are laid out: ``"interleaved"``
            (Lumina-Next) or ``"blocked"`` (Lumina-Image 2.0 and Z-Image, whose checkpoints record it).
        rope_theta: the RoPE base of the image axes, ``w_k = theta^(-2k / d_a)`` (Lumina-Next and Lumina-Image
            2.0: 10000; Z-Image: 256).
    """

    name = "image"
    conditions = frozenset({"text", "class", "none"})
    preview_formats = ("png",)
    read_extensions = IMAGE_EXTENSIONS
    default_recipe = "recipes/image/shapes_tiny.yaml"
    nested_components = {"autoencoder": CODECS}

    def __init__(
        self,
        patch_size: int = 2,
        channels: int = 3,
        image_size: int | Sequence[int] = 32,
        autoencoder: dict[str, Any] | None = None,
        fid: bool = True,
        latent_cache: bool | str = False,
        read_scale: Sequence[float] | None = None,
        rope_layout: str = "interleaved",
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__(
            patch_size=patch_size,
            channels=channels,
            image_size=image_size,
            autoencoder=autoencoder,
            fid=fid,
            latent_cache=latent_cache,
            read_scale=read_scale,
            rope_layout=rope_layout,
            rope_theta=rope_theta,
        )
        if float(rope_theta) <= 1:
            raise ValueError(f"rope_theta must be a RoPE base above 1 (10000 released, Z-Image 256); got {rope_theta}")
        self.rope_theta = float(rope_theta)
        if rope_layout not in ("interleaved", "blocked"):
            raise ValueError(
                "rope_layout must be 'interleaved' (Lumina-Next: the row and column rotation pairs alternate) or "
                f"'blocked' (Lumina-Image 2.0: all row pairs, then all column pairs); got {rope_layout!r}"
            )
        self.rope_layout = rope_layout
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1; got {patch_size}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1; got {channels}")
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.image_size = _size_pair(image_size)
        self.use_fid = bool(fid)
        self.codec = CODECS.build(dict(autoencoder)) if autoencoder else None
        if self.codec is not None:
            if self.codec.image_channels != self.channels:
                raise ValueError(
                    f"the autoencoder takes {self.codec.image_channels}-channel images but channels={channels}"
                )
            self.token_channels, self.factor = self.codec.latent_channels, self.codec.factor
        else:
            self.token_channels, self.factor = self.channels, 1
        check_divisible((self.channels, *self.image_size), self.patch_size * self.factor, "image_size")
        self._fid_net = None
        self.latent_cache = self._latent_cache(latent_cache)
        self.read_scale = None if read_scale is None else tuple(float(f) for f in read_scale)
        if self.read_scale is not None and (
            len(self.read_scale) != 2 or not 0 < self.read_scale[0] <= self.read_scale[1]
        ):
            raise ValueError(f"read_scale must be [lo, hi] with 0 < lo <= hi; got {list(read_scale)}")

    def _latent_cache(self, setting: bool | str | None):
        if setting in (False, None, "", "false", "False"):
            return None
        if self.codec is None:
            raise ValueError(
                "latent_cache needs an autoencoder (modality.params.autoencoder): in pixel space there are no "
                f"latents to cache; got latent_cache={setting!r} without one"
            )
        from .latent_cache import LatentCache

        return LatentCache(self.codec, None if setting is True or setting == "true" else str(setting))

    # -- geometry ----------------------------------------------------------------------------------------
    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this many pixels."""
        return self.patch_size * self.factor

    def grid(self, shape: Sequence[int]) -> tuple[int, int]:
        """Patch grid (rows, columns) of a (C, H, W) pixel shape."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, H, W) image shape; got {shape}")
        h, w = check_divisible(shape, self.multiple)
        return h // self.multiple, w // self.multiple

    def adapter_spec(self) -> AdapterSpec:
        in_dim = self.token_channels * self.patch_size**2
        gh, gw = self.grid((self.channels, *self.image_size))
        return AdapterSpec(
            in_dim=in_dim,
            out_dim=in_dim,  # 2 * in_dim for a task with learn_sigma (the core applies it)
            num_axes=2,
            axis_split=(1, 1),
            rope_layout=self.rope_layout,
            rope_theta=self.rope_theta,
            train_extent=(float(gh), float(gw)),
        )

    def guidance_mask(self, k: int, shape: tuple[int, ...] | None = None) -> Tensor:
        """(D,) bool: the token values of the first ``k`` token-space channels (latent channels with an
        autoencoder). The released Lumina-Next pipeline guides latent channels 0-2 of 4 and keeps the
        conditional prediction on the fourth: ``sampling.cfg_channels: 3`` reproduces it (a compatibility
        switch; the default guides everything). A token is flattened in (C, ph, pw) order, so channel c holds
        columns ``c p^2 .. (c + 1) p^2 - 1``."""
        if not 1 <= int(k) <= self.token_channels:
            raise ValueError(f"cfg_channels must be between 1 and {self.token_channels}; got {k}")
        p2 = self.patch_size**2
        return torch.arange(self.token_channels * p2) // p2 < int(k)

    def read_file(self, path: str | Path) -> Tensor:
        """An image file as a (C, H, W) sample in [-1, 1] at :meth:`read_size` (resize to cover, centre crop)."""
        from .folder import decode_image

        return decode_image(path, self.read_size(path), self.channels)

    def read_size(self, path: str | Path) -> tuple[int, int]:
        """The (H, W) a file is read at: ``image_size``, or with ``read_scale = [lo, hi]`` the file's own
        size as ``f x image_size``, ``f = clip(min(h / H, w / W), lo, hi)``, each side rounded down to a
        multiple of the patch (at least one patch)."""
        if self.read_scale is None:
            return self.image_size
        from PIL import Image

        with Image.open(path) as img:  # reads the header only
            w, h = img.size
        th, tw = self.image_size
        f = min(max(min(h / th, w / tw), self.read_scale[0]), self.read_scale[1])
        m = self.multiple
        return max(m, int(th * f + 1e-6) // m * m), max(m, int(tw * f + 1e-6) // m * m)

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return tuple(int(s) for s in sample.shape)

    def default_shape(self) -> tuple[int, ...]:
        return (self.channels, *self.image_size)

    # -- tokens ------------------------------------------------------------------------------------------
    def _to_token_space(self, x: Tensor) -> Tensor:
        if self.codec is None:
            return x
        if self.latent_cache is not None:
            return self.latent_cache.encode(x)
        return self.codec.encode(x[None])[0]

    def _from_token_space(self, z: Tensor) -> Tensor:
        if self.codec is None:
            return z
        return self.codec.decode(z[None])[0]

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        """(C, H, W) images in [-1, 1], any sizes that are multiples of :attr:`multiple`, to patch tokens."""
        if len(samples) == 0:
            raise ValueError("tokenize needs at least one image")
        tokens, positions, shapes = [], [], []
        for k, x in enumerate(samples):
            if not isinstance(x, Tensor) or x.dim() != 3:
                raise ValueError(
                    f"image {k}: expected a (C, H, W) tensor; got {getattr(x, 'shape', type(x))}"
                )
            gh, gw = self.grid(x.shape)
            tokens.append(patchify(self._to_token_space(x), self.patch_size))
            positions.append(grid_positions(gh, gw, device=x.device))
            shapes.append((gh, gw))
        return TokenBatch.from_sequences(tokens, positions, shapes)

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Patch tokens back to (C, H, W) images (the first ``in_dim`` channels of wider predictions)."""
        width = self.token_channels * self.patch_size**2
        if batch.dim < width:
            raise ValueError(f"detokenize expects tokens of width >= {width}; got {batch.dim}")
        out = []
        for i, (gh, gw) in enumerate(batch.shapes):
            z = unpatchify(batch.tokens[i, : gh * gw, :width], (gh, gw), self.token_channels, self.patch_size)
            out.append(self._from_token_space(z))
        return out

    def layout(
        self, shapes: Sequence[tuple[int, ...]], device: torch.device | str | None = None
    ) -> TokenBatch:
        """Zero tokens on the patch grids of the given (C, H, W) pixel shapes (no autoencoder call)."""
        if len(shapes) == 0:
            raise ValueError("layout needs at least one shape")
        width = self.token_channels * self.patch_size**2
        tokens, positions, grids = [], [], []
        for s in shapes:
            gh, gw = self.grid(s)
            tokens.append(torch.zeros(gh * gw, width, device=device))
            positions.append(grid_positions(gh, gw, device=device))
            grids.append((gh, gw))
        return TokenBatch.from_sequences(tokens, positions, grids)

    def to(self, device: torch.device | str) -> ImagePlugin:
        if self.codec is not None:
            self.codec.to(device)
        if self._fid_net is not None:
            self._fid_net.to(device)
        return self

    # -- people-facing output ----------------------------------------------------------------------------
    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        return write_image_preview(samples, conditions, out_dir, stem)

    def preview_to_tensorboard(self, writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
        preview_to_tensorboard(writer, samples, step, tag)

    # -- metrics -----------------------------------------------------------------------------------------
    def evaluate(
        self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None
    ) -> dict[str, float]:
        """The dataset's ground-truth checker (if any) plus ``fid`` against the items' real images and the
        within-condition ``spread``, ``spread_real`` and ``spread_ratio``
        (:mod:`lumina_core.data.diversity`, in the same feature space): a composition that collapses the
        samples of one caption shows a ratio far below 1 even where the checker is satisfied."""
        metrics = super().evaluate(samples, items, dataset)
        reals = [it["sample"] for it in items if isinstance(it.get("sample"), Tensor)]
        if self.use_fid and self.channels in (1, 3) and len(samples) >= 2 and len(reals) >= 2:
            from lumina_core.data.diversity import condition_key, within_condition_spread

            from .fid import embed_images, fid_score

            metrics["fid"] = fid_score(samples, reals)
            if len(reals) == len(samples):
                keys = [condition_key(it.get("condition")) for it in items]
                metrics.update(within_condition_spread(embed_images(samples), embed_images(reals), keys))
        return metrics

"""A frozen diffusers ``AutoencoderKL`` as a latent codec, loaded from a user's local path only.

Latents are normalised the way the released model expects them:

    z = (E(x) - shift) * scale        x = D(z / scale + shift)

with ``scale`` / ``shift`` taken from the autoencoder's config (``scaling_factor``, ``shift_factor``)
unless given. The released Lumina-Next T2I model uses the SDXL autoencoder: 4 latent channels, a factor-8
downsampling, ``scale = 0.13025``, no shift. Nothing is ever downloaded: the path must hold a
``config.json`` plus weights saved by ``AutoencoderKL.save_pretrained``.

Registered in :data:`lumina_core.registry.CODECS` as ``"autoencoder_kl"`` so any plugin can use it by name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lumina_core.codec import Codec
from lumina_core.registry import CODECS

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@CODECS.register("autoencoder_kl")
class AutoencoderKLCodec(nn.Module, Codec):
    """Encode images in [-1, 1] of shape (B, 3, H, W) to normalised latents (B, c, H/f, W/f), and back.

    Args:
        path: local directory of a diffusers ``AutoencoderKL`` (``save_pretrained`` layout).
        scaling_factor: latent scale; None reads ``config.scaling_factor`` (SDXL: 0.13025).
        shift_factor: latent shift; None reads ``config.shift_factor`` (absent or None means 0).
        dtype: weights' dtype ("float32", "bfloat16", "float16").
        sample_posterior: draw ``z ~ q(z|x)`` when encoding (training); False uses the posterior mode,
            which makes encoding deterministic.
        subfolder: optional subfolder inside ``path`` (e.g. "vae" of a full pipeline folder).
    """

    def __init__(
        self,
        path: str,
        scaling_factor: float | None = None,
        shift_factor: float | None = None,
        dtype: str = "float32",
        sample_posterior: bool = False,
        subfolder: str | None = None,
    ) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        if not path or path == "???":
            raise ValueError(
                "autoencoder_kl needs `path`: a local folder holding an AutoencoderKL (config.json)"
            )
        root = Path(path).expanduser()
        if not (root / (subfolder or "") / "config.json").is_file():
            raise ValueError(
                f"no AutoencoderKL at {root / (subfolder or '')}: expected a config.json and weights saved by "
                "AutoencoderKL.save_pretrained (nothing is downloaded)"
            )
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}")
        kwargs = {"local_files_only": True, "torch_dtype": _DTYPES[dtype]}
        if subfolder:
            kwargs["subfolder"] = subfolder
        self.vae = AutoencoderKL.from_pretrained(str(root), **kwargs)
        self.vae.requires_grad_(False).eval()
        cfg = self.vae.config
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else cfg.scaling_factor)
        shift = shift_factor if shift_factor is not None else getattr(cfg, "shift_factor", None)
        self.shift_factor = float(shift or 0.0)
        self.sample_posterior = sample_posterior
        self.latent_channels = int(cfg.latent_channels)
        self.image_channels = int(cfg.in_channels)
        self.factor = 2 ** (len(cfg.block_out_channels) - 1)

    def train(self, mode: bool = True) -> AutoencoderKLCodec:
        """The autoencoder stays frozen in eval mode whatever the surrounding module does."""
        super().train(mode)
        self.vae.eval()
        return self

    @torch.no_grad()
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, C, H, W) images in [-1, 1] -> (B, c, H/f, W/f) normalised latents."""
        if x.dim() != 4 or x.shape[1] != self.image_channels:
            raise ValueError(f"encode expects (B, {self.image_channels}, H, W) images; got {tuple(x.shape)}")
        param = next(self.vae.parameters())
        dist = self.vae.encode(x.to(param.device, param.dtype)).latent_dist
        z = dist.sample(generator) if self.sample_posterior else dist.mode()
        return ((z - self.shift_factor) * self.scaling_factor).to(x.dtype)

    # -- caching: the posterior's moments, from which encode's latents follow exactly --------------------
    def fingerprint(self) -> str:
        """What the posterior moments depend on: the autoencoder's class, weights' dtype and a digest of its
        weights (:func:`lumina_core.conditioning.cache.weights_digest`), not its path (the same weights
        anywhere give the same moments) nor the scale / shift (applied after the cache, in
        :meth:`from_moments`)."""
        if self._fingerprint is None:
            from lumina_core.conditioning.cache import weights_digest

            param = next(self.vae.parameters())
            self._fingerprint = f"{type(self.vae).__name__}(dtype={param.dtype})|{weights_digest(self.vae)}"
        return self._fingerprint

    _fingerprint: str | None = None

    @torch.no_grad()
    def encode_moments(self, x: Tensor) -> dict[str, Tensor]:
        """(B, C, H, W) images -> the posterior ``q(z|x) = N(mean, std^2)`` as ``{"mean", "std"}`` (B, c, h, w),
        in the autoencoder's dtype and before normalisation (``std`` only with ``sample_posterior``: the mode
        is the mean). ``from_moments(encode_moments(x))`` is ``encode(x)``."""
        if x.dim() != 4 or x.shape[1] != self.image_channels:
            raise ValueError(f"encode expects (B, {self.image_channels}, H, W) images; got {tuple(x.shape)}")
        param = next(self.vae.parameters())
        dist = self.vae.encode(x.to(param.device, param.dtype)).latent_dist
        return {"mean": dist.mean, "std": dist.std} if self.sample_posterior else {"mean": dist.mean}

    def from_moments(
        self, moments: dict[str, Tensor], dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None
    ) -> Tensor:
        """Normalised latents ``(z - shift) * scale`` from :meth:`encode_moments`' output: ``z`` is the mean, or
        with ``sample_posterior`` ``mean + std * eps``, ``eps ~ N(0, I)`` drawn afresh (as ``encode`` does)."""
        param = next(self.vae.parameters())
        mean = moments["mean"].to(param.device)
        if self.sample_posterior:
            if "std" not in moments:
                raise ValueError("sample_posterior needs the posterior's std; these moments hold the mean only")
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + moments["std"].to(param.device) * eps
        else:
            z = mean
        return ((z - self.shift_factor) * self.scaling_factor).to(dtype)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """(B, c, h, w) normalised latents -> (B, C, h f, w f) images (nominally in [-1, 1], not clamped)."""
        if z.dim() != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"decode expects (B, {self.latent_channels}, h, w) latents; got {tuple(z.shape)}"
            )
        param = next(self.vae.parameters())
        z = z.to(param.device, param.dtype) / self.scaling_factor + self.shift_factor
        return self.vae.decode(z).sample.to(torch.float32)

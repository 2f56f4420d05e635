"""An on-disk cache of autoencoder latents, so each training image goes through the autoencoder once.

Fine-tuning in latent space spends much of a step in the frozen autoencoder's encoder (the SDXL VAE at 1024 px
costs about as much as a forward pass of a large trunk). The latent of an image is a pure function of its
pixels and the autoencoder's weights, so it is cached under the key

    key = (C, H, W) | dtype | BLAKE2b(pixel bytes)          namespace = the autoencoder's fingerprint

i.e. the decoded, resized and cropped pixels the dataset gives (which already reflect the file's contents, the
target size or aspect bucket and the crop), and the autoencoder's class, dtype and a digest of its weights. A
changed file, another size or bucket, or another autoencoder is a new entry; nothing stale can be read. What is
stored is the posterior ``q(z | x)`` (its mean, and its standard deviation when latents are sampled), before the
latent scale and shift, so ``sample_posterior`` still draws a fresh latent every step and the result equals the
uncached ``encode`` exactly.

Entries live in a :class:`lumina_core.conditioning.cache.TensorStore` (one safetensors file each, written
atomically), by default under ``<cache dir>/latents`` (``$LUMINA_CACHE_DIR``, else ``~/.cache/lumina``), so a
second run, a resumed run or a LoRA run on the same folder reads them back without running the encoder.
Hashing 1024 x 1024 RGB pixels (12 MB) takes milliseconds; the encoder it saves takes far longer.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.conditioning.cache import TensorStore


def pixel_key(x: Tensor) -> str:
    """The cache key of one (C, H, W) image: its shape, dtype and a BLAKE2b digest of its values."""
    data = x.detach().to("cpu").contiguous()
    digest = hashlib.blake2b(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"", digest_size=20)
    return f"{tuple(data.shape)}|{data.dtype}|{digest.hexdigest()}"


def default_latent_directory() -> Path:
    """``<cache dir>/latents``: where latents are kept unless a folder is given."""
    from lumina_core.paths import cache_dir

    return cache_dir() / "latents"


class LatentCache:
    """Images -> normalised latents through ``codec``, each distinct image encoded once (then read from disk).

    Args:
        codec: the frozen codec. With ``encode_moments`` / ``from_moments`` / ``fingerprint`` (the
            ``autoencoder_kl`` codec) the posterior is cached; a codec without them must be deterministic
            (no ``sample_posterior``) and its ``encode`` output is cached.
        directory: the cache folder (None: :func:`default_latent_directory`).

    Attributes:
        encoded: images this cache has sent through the encoder (its misses).
        hits: images read back from disk.
    """

    def __init__(self, codec: Any, directory: str | os.PathLike | None = None) -> None:
        self.codec = codec
        self.moments = all(hasattr(codec, a) for a in ("encode_moments", "from_moments", "fingerprint"))
        if not self.moments and getattr(codec, "sample_posterior", False):
            raise ValueError(
                f"latent_cache: {type(codec).__name__} samples its latents but cannot give its posterior's "
                "moments (encode_moments / from_moments), so its latents cannot be cached; turn off "
                "sample_posterior or latent_cache"
            )
        fingerprint = codec.fingerprint() if hasattr(codec, "fingerprint") else _codec_fingerprint(codec)
        kind = "moments" if self.moments else "latents"
        self.directory = Path(directory) if directory is not None else default_latent_directory()
        self.store = TensorStore(self.directory, namespace=f"{kind}|{fingerprint}")
        self.encoded = 0
        self.hits = 0

    def __repr__(self) -> str:
        return f"LatentCache({str(self.directory)!r}, encoded={self.encoded}, hits={self.hits})"

    def encode(self, x: Tensor) -> Tensor:
        """One (C, H, W) image -> its (c, h, w) normalised latent, on the codec's device, in ``x``'s dtype."""
        key = pixel_key(x)
        entry = self.store.get(key)
        if entry is None:
            if self.moments:
                entry = {k: v[0] for k, v in self.codec.encode_moments(x[None]).items()}
            else:
                entry = {"latent": self.codec.encode(x[None])[0]}
            self.store.put(key, entry)
            self.encoded += 1
        else:
            self.hits += 1
        if self.moments:
            return self.codec.from_moments({k: v[None] for k, v in entry.items()}, dtype=x.dtype)[0]
        device = _codec_device(self.codec, entry["latent"].device)
        return entry["latent"].to(device, x.dtype)


def _codec_device(codec: Any, default: torch.device) -> torch.device:
    params = getattr(codec, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else default


def _codec_fingerprint(codec: Any) -> str:
    """A codec without its own fingerprint: its class and, if it is a module, a digest of its weights."""
    from torch import nn

    from lumina_core.conditioning.cache import weights_digest

    name = f"{type(codec).__module__}.{type(codec).__qualname__}"
    return f"{name}|{weights_digest(codec)}" if isinstance(codec, nn.Module) else name

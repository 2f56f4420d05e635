"""Caching a frozen encoder's outputs on disk, so each distinct input is encoded once, not every step.

:class:`TensorStore` is the disk layer: a string key -> a few named tensors, one safetensors file per key
under ``directory``, named by ``SHA-256(namespace \\n key)`` and written atomically (write a temporary file,
``os.replace``), so concurrent readers (DataLoader workers, other ranks, a second run) never see half a file.
The key and namespace are stored in the file's metadata and checked on read, so a hash collision or a file from
another encoder is a miss, never a wrong answer. Any frozen encoder can use it (the image plugin's latent
cache does).

:class:`FeatureCache` maps a raw condition to its valid feature rows ``(L_i, dim)`` (padding stripped), in
memory and optionally on disk through a :class:`TensorStore`. :class:`CachedConditioner` wraps a frozen
conditioner: cached values are re-padded exactly as the encoder pads (side, multiple), misses are encoded
together in one call, so results equal the uncached encoder's. By default its features are kept on disk under
``<cache dir>/features`` (:func:`lumina_core.paths.cache_dir`), namespaced by the encoder's fingerprint and a
digest of its weights (:func:`encoder_digest`), so a later run or a resumed one does not run the text encoder
again for captions it has seen. Trainable conditioners are refused: their features change every optimiser step.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.conditioning.base import Conditioner, pad_features, unpad_features
from lumina_core.tokens import Condition

#: ``CachedConditioner(directory=DEFAULT_DIRECTORY)``: features on disk under ``<cache dir>/features``
DEFAULT_DIRECTORY = "default"
#: values read from each parameter by :func:`weights_digest`
DIGEST_SAMPLES = 256


def value_key(value: Any) -> str:
    """A stable text key for a raw condition (the type is part of the key: 3 and "3" differ)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return f"{type(value).__name__}:{value!r}"


def weights_digest(module: nn.Module) -> str:
    """A short digest of a module's weights: every parameter's and buffer's name, shape, dtype and
    ``DIGEST_SAMPLES`` values spread evenly over it (a strided view, so it costs microseconds even for a
    2B-parameter encoder). Two different trainings or random initialisations differ in essentially every value,
    so the digest tells them apart where a path alone would not (a folder whose weights were replaced)."""
    h = hashlib.sha256()
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
        if t.is_meta or t.numel() == 0:
            continue
        flat = t.detach().reshape(-1)
        picked = flat[:: max(1, flat.numel() // DIGEST_SAMPLES)][:DIGEST_SAMPLES]
        h.update(picked.to("cpu", torch.float64).numpy().tobytes())
    return h.hexdigest()[:16]


def files_digest(path: str | os.PathLike) -> str:
    """A short digest of the files at ``path`` (a file, or a folder and its sub-folders): each one's relative
    name, size and modification time, no contents read. Replacing the weights in a folder changes it."""
    root = Path(path).expanduser()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root) if f != root else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def encoder_digest(encoder: nn.Module) -> str:
    """What identifies a frozen encoder's weights for an on-disk cache: :func:`weights_digest` of the weights it
    holds, plus :func:`files_digest` of its ``path`` when it loads from a local one (encoders such as ``hf``
    load their model lazily, outside the module tree, so the files are what identifies them before a load)."""
    digest = weights_digest(encoder)
    path = getattr(encoder, "path", None)
    if isinstance(path, (str, os.PathLike)) and str(path) and Path(path).expanduser().exists():
        digest += "+" + files_digest(path)
    return digest


class TensorStore:
    """String key -> ``{name: tensor}``, one safetensors file per key under ``directory`` (created if absent).

    Args:
        directory: the folder; entries of every namespace share it.
        namespace: the producer's fingerprint; entries written under another namespace never match.
    """

    def __init__(self, directory: str | os.PathLike, namespace: str = "") -> None:
        self.directory = Path(directory).expanduser()
        self.namespace = namespace
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create the cache folder {self.directory}: {err}") from err

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (whether or not it exists yet)."""
        digest = hashlib.sha256(f"{self.namespace}\n{key}".encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.safetensors"

    def get(self, key: str) -> dict[str, Tensor] | None:
        """The tensors stored under ``key``, or None (absent, another namespace, or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("key") != key or meta.get("namespace") != self.namespace:
                    return None
                return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no iter)
        except (OSError, SafetensorError):
            return None  # a damaged entry is a miss; the next put replaces it

    def put(self, key: str, tensors: dict[str, Tensor]) -> Path:
        """Write ``tensors`` under ``key`` atomically; returns the file."""
        from safetensors.torch import save_file

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
            save_file(plain, tmp, metadata={"key": key, "namespace": self.namespace})
            os.replace(tmp, path)  # atomic: readers never see half a file
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def __len__(self) -> int:
        """Files in the folder (of every namespace)."""
        return sum(1 for _ in self.directory.glob("*/*.safetensors"))


class FeatureCache:
    """Raw condition -> feature rows ``(L_i, dim)``; in memory, plus on disk when ``directory`` is given.

    Args:
        directory: folder for the on-disk cache (created if absent); None keeps everything in memory.
        namespace: the encoder's fingerprint; entries from another encoder/settings never match.
    """

    def __init__(self, directory: str | os.PathLike | None = None, namespace: str = "") -> None:
        self.directory = None if directory is None else Path(directory)
        self.namespace = namespace
        self.store = None if directory is None else TensorStore(directory, namespace)
        self._memory: dict[str, Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._memory)

    def get(self, value: Any) -> Tensor | None:
        key = value_key(value)
        feats = self._memory.get(key)
        if feats is None and self.store is not None:
            entry = self.store.get(key)
            if entry is not None and "features" in entry:
                feats = self._memory[key] = entry["features"]
        if feats is None:
            self.misses += 1
        else:
            self.hits += 1
        return feats

    def put(self, value: Any, features: Tensor) -> None:
        if features.dim() != 2:
            raise ValueError(f"cached features must be (L, dim); got {tuple(features.shape)}")
        key = value_key(value)
        features = features.detach().to("cpu").contiguous()
        self._memory[key] = features
        if self.store is not None:
            self.store.put(key, {"features": features})


def default_feature_directory() -> Path:
    """``<cache dir>/features``: where :class:`CachedConditioner` keeps features unless told otherwise."""
    from lumina_core.paths import cache_dir

    return cache_dir() / "features"


class CachedConditioner(Conditioner):
    """A frozen conditioner whose features are computed once per distinct raw value.

    Args:
        inner: the frozen conditioner (e.g. ``minilm`` or ``hf``); a trainable one raises ValueError.
        directory: the on-disk cache folder (see :class:`FeatureCache`); ``"default"`` (the default):
            ``<cache dir>/features`` (``$LUMINA_CACHE_DIR``, else ``~/.cache/lumina``); None: memory only.
        cache: an existing :class:`FeatureCache` to share (overrides ``directory``).

    On disk, entries are namespaced by ``inner.fingerprint()`` plus :func:`encoder_digest` of ``inner``, so
    changed weights at the same path, or other settings, never read stale features. A lazily loading encoder
    (``hf``) is not even loaded while every value it is asked for is on disk.
    """

    def __init__(
        self,
        inner: Conditioner,
        directory: str | os.PathLike | None = DEFAULT_DIRECTORY,
        cache: FeatureCache | None = None,
    ) -> None:
        if inner.trainable:
            raise ValueError(
                f"cannot cache a trainable conditioner ({type(inner).__name__}, kind {inner.kind!r}): its "
                "features change as it trains; caching is for frozen encoders only"
            )
        super().__init__(dim=inner.dim, null_value=inner.null_value)
        self.inner = inner
        self.kind = inner.kind
        self.trainable = False
        self.padding_side = inner.padding_side
        self.pad_to_multiple_of = inner.pad_to_multiple_of
        if cache is None:
            if directory == DEFAULT_DIRECTORY:
                directory = default_feature_directory()
            namespace = inner.fingerprint()
            if directory is not None:
                namespace += f"|weights={encoder_digest(inner)}"
            cache = FeatureCache(directory, namespace=namespace)
        self.cache = cache
        #: distinct raw values the inner encoder has been run on through this wrapper (the cache's misses)
        self.encoded = 0

    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        values = self._nulls_filled(values)
        if self.dim is None:
            return self.inner.encode(values, device=device)
        feats: list[Tensor | None] = [self.cache.get(v) for v in values]
        missing = list(dict.fromkeys(value_key(v) for v, f in zip(values, feats, strict=True) if f is None))
        if missing:
            first = {}
            for v in values:
                first.setdefault(value_key(v), v)
            fresh = unpad_features(self.inner.encode([first[k] for k in missing], device=device))
            self.encoded += len(missing)
            by_key = dict(zip(missing, fresh, strict=True))
            for k, f in by_key.items():
                self.cache.put(first[k], f)
            feats = [by_key[value_key(v)] if f is None else f for v, f in zip(values, feats, strict=True)]
        return pad_features(feats, self.padding_side, self.pad_to_multiple_of, device=device or "cpu")

    def precompute(self, values: Iterable[Any], batch_size: int = 64) -> int:
        """Encode every distinct value not yet cached, ``batch_size`` at a time; returns how many were new."""
        todo = []
        seen = set()
        for v in values:
            v = self.null_value if v is None else v
            k = value_key(v)
            if k not in seen and self.cache.get(v) is None:
                todo.append(v)
            seen.add(k)
        for i in range(0, len(todo), batch_size):
            self.encode(todo[i : i + batch_size])
        return len(todo)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

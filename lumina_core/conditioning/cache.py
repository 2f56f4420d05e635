"""Caching a frozen encoder's features, so a dataset's conditions are encoded once, not every step.

:class:`FeatureCache` maps a raw condition to its valid feature rows ``(L_i, dim)`` (padding stripped), in
memory and optionally on disk (one safetensors file per condition under ``directory``, named by the SHA-256
of the encoder's fingerprint and the value, written atomically). :class:`CachedConditioner` wraps a frozen
conditioner: cached values are re-padded exactly as the encoder pads (side, multiple), misses are encoded
together in one call, so results equal the uncached encoder's. Trainable conditioners are refused: their
features change every optimiser step.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.conditioning.base import Conditioner, pad_features, unpad_features
from lumina_core.tokens import Condition


def value_key(value: Any) -> str:
    """A stable text key for a raw condition (the type is part of the key: 3 and "3" differ)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return f"{type(value).__name__}:{value!r}"


class FeatureCache:
    """Raw condition -> feature rows ``(L_i, dim)``; in memory, plus on disk when ``directory`` is given.

    Args:
        directory: folder for the on-disk cache (created if absent); None keeps everything in memory.
        namespace: the encoder's fingerprint; entries from another encoder/settings never match.
    """

    def __init__(self, directory: str | os.PathLike | None = None, namespace: str = "") -> None:
        self.directory = None if directory is None else Path(directory)
        self.namespace = namespace
        self._memory: dict[str, Tensor] = {}
        self.hits = 0
        self.misses = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._memory)

    def _file(self, key: str) -> Path:
        digest = hashlib.sha256(f"{self.namespace}\n{key}".encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.safetensors"  # type: ignore[operator]

    def get(self, value: Any) -> Tensor | None:
        key = value_key(value)
        feats = self._memory.get(key)
        if feats is None and self.directory is not None:
            path = self._file(key)
            if path.is_file():
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as f:
                    meta = f.metadata() or {}
                    if meta.get("key") == key and meta.get("namespace") == self.namespace:
                        feats = f.get_tensor("features")
                        self._memory[key] = feats
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
        if self.directory is not None:
            from safetensors.torch import save_file

            path = self._file(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            try:
                save_file({"features": features}, tmp, metadata={"key": key, "namespace": self.namespace})
                os.replace(tmp, path)  # atomic: readers never see half a file
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)


class CachedConditioner(Conditioner):
    """A frozen conditioner whose features are computed once per distinct raw value.

    Args:
        inner: the frozen conditioner (e.g. ``minilm`` or ``hf``); a trainable one raises ValueError.
        directory: optional on-disk cache folder (see :class:`FeatureCache`).
        cache: an existing :class:`FeatureCache` to share (overrides ``directory``).
    """

    def __init__(
        self,
        inner: Conditioner,
        directory: str | os.PathLike | None = None,
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
        self.cache = cache if cache is not None else FeatureCache(directory, namespace=inner.fingerprint())

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

"""The codec contract (what ``CODECS`` holds): a frozen, invertible change of representation.

A codec maps a sample to the representation the plugin tokenizes and back - an image autoencoder
(pixels -> latents), a mel frontend with a vocoder (waveform -> log-mel), ... -

    z = codec.encode(x)          x_hat = codec.decode(z)          x_hat ~ x (up to the codec's loss)

It has no trainable parameters in a run (frozen), so it is never saved with the model; a plugin builds it
from a recipe node (``{name: ..., params: {...}}``, the plugin's own parameter declared in its
``nested_components``) and moves it with :meth:`to`. Registered in :data:`lumina_core.registry.CODECS`, so a
modality reaches another package's codec by name without importing it.
"""

from __future__ import annotations

import abc
from typing import Any


class Codec(abc.ABC):
    """Base class of codecs: subclass, implement :meth:`encode` and :meth:`decode`, register in ``CODECS``.

    A codec that is an ``nn.Module`` lists ``nn.Module`` first (``class AE(nn.Module, Codec)``), so the
    module's own ``to`` wins over the default here."""

    @abc.abstractmethod
    def encode(self, x: Any) -> Any:
        """A sample (or a batch) in the data representation to the codec's representation."""

    @abc.abstractmethod
    def decode(self, z: Any) -> Any:
        """The inverse of :meth:`encode` (up to the codec's loss)."""

    def to(self, device: Any) -> Codec:
        """Move whatever the codec computes with (weights, filter banks) to ``device``; returns ``self``."""
        return self

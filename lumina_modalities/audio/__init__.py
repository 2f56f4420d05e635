"""The built-in ``audio`` modality: text-to-audio on log-mel patches, HiFi-GAN / Griffin-Lim decoders.

Importing this package registers:

* MODALITIES ``audio`` (:class:`.plugin.AudioPlugin`);
* CODECS ``mel_hifigan`` and ``mel_griffinlim`` (:mod:`.codecs`), which other modalities (music) use by name;
* DATASETS ``tones`` (procedural, with a ground-truth checker), ``audio_folder``, ``audio_shards`` and
  ``audio_stream``.
"""

from __future__ import annotations

from . import codecs, folder, plugin, tones  # noqa: F401  (registration)
from .codecs import MelGriffinLim, MelHifiGan
from .io import AudioReadError, load_audio, save_audio
from .mel import MelFrontend, MelSettings
from .plugin import AudioPlugin

__all__ = [
    "AudioPlugin", "AudioReadError", "MelFrontend", "MelGriffinLim", "MelHifiGan", "MelSettings",
    "load_audio", "save_audio",
]

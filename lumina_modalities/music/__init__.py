"""The built-in ``music`` modality: text-to-music on the audio modality's log-mel representation.

Importing this package registers MODALITIES ``music`` (:class:`.plugin.MusicPlugin`, the registered ``audio``
class with music's constructor defaults) and DATASETS ``melodies`` (procedural melodies / chord progressions
with a key, tempo and note-density checker). The representation and its codecs come from the registry
(``audio`` modality, ``mel_*`` codecs), never by import.
"""

from __future__ import annotations

from . import melodies, plugin  # noqa: F401  (registration)
from .plugin import MusicPlugin

__all__ = ["MusicPlugin"]

"""The built-in ``music`` modality: text-to-music on the audio modality's log-mel representation.

Importing this package registers MODALITIES ``music`` (:class:`.plugin.MusicPlugin`) and DATASETS
``melodies`` (procedural melodies / chord progressions with a key, tempo and note-density checker). The
mel frontend and vocoders come from the registry (``audio`` modality, ``mel_*`` codecs), never by import.
"""

from __future__ import annotations

from . import melodies, plugin  # noqa: F401  (registration)
from .plugin import MusicPlugin

__all__ = ["MusicPlugin"]

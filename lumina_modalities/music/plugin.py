"""The music modality: the ``audio`` modality's mel-patch representation, configured for music.

Music is not a second implementation, nor a facade that forwards to one: :class:`MusicPlugin` *is* the audio
representation (log-mel frontend, fixed normalisation of log-mels or, with ``compress``, of power-law
compressed mel magnitudes, (time, freq) patches with 2-D RoPE, vocoder, previews, checker + FAD metrics) with
other constructor defaults. It shares no code with the ``audio`` package by import (a modality never imports
another): the class is taken from the registry by name, exactly as an external plugin would, and the
constructor is the audio one with music's defaults (:func:`lumina_core.registry.with_defaults`), so every
parameter, its type and its documentation are the audio modality's:

* codec ``mel_griffinlim`` at 16 kHz, n_fft 1024, hop 320 (50 frames/s), 64 mels up to 8 kHz
  (:data:`MUSIC_CODEC`) - cheaper than the 22.05 kHz HiFi-GAN setting and enough for additive-synthesis
  melodies; ``codec="mel_hifigan"`` selects the pretrained vocoder at its fixed 22.05 kHz / 80-mel setting
  (keep the patches coarse there);
* 4 s clips (``clip_seconds``) and coarse (8 frames x 16 mels) patches: 26 x 4 tokens per clip;
* normalisation ``mean`` -7 (``std`` 3.5): the ``melodies`` log-mels at 16 kHz. With ``compress`` pick the
  compressed magnitudes' statistics instead (``melodies`` at g = 0.15: 0.40, 0.218), as
  ``recipes/music/melodies_tiny.yaml`` does.

The FAD-style ``fad`` score's feature network works at 22.05 kHz and resamples music's 16 kHz clips itself.
"""

from __future__ import annotations

from lumina_core.registry import MODALITIES, with_defaults

MUSIC_CODEC = {
    "name": "mel_griffinlim",
    "params": {"sample_rate": 16000, "n_fft": 1024, "hop_length": 320, "n_mels": 64, "f_max": 8000.0},
}

#: the audio modality's class, through the registry (loads the ``audio`` entry point on first use)
AudioRepresentation = MODALITIES.get("audio")


@MODALITIES.register("music")
class MusicPlugin(AudioRepresentation):
    """Text-to-music on mel patches: the ``audio`` representation with music's defaults (module doc)."""

    name = "music"
    default_recipe = "recipes/music/melodies_tiny.yaml"

    __init__ = with_defaults(
        AudioRepresentation.__init__, codec=MUSIC_CODEC, patch_size=(8, 16), clip_seconds=4.0, mean=-7.0
    )

    @property
    def mel(self) -> MusicPlugin:
        """The mel representation, which is the plugin itself (kept for callers of the former facade)."""
        return self

"""The music modality: the audio modality's mel patch representation at music's own rate and length.

Music shares no code with the ``audio`` package by import (a modality never imports another): it asks the
registry for the ``audio`` modality and its codecs by name, exactly as an external plugin would, and
configures them for music. The representation (log-mel frontend, fixed normalisation of log-mels or, with
``compress``, of power-law compressed mel magnitudes, (time, freq) patches with 2-D RoPE, vocoder) is
therefore the same; the defaults differ:

* codec ``mel_griffinlim`` at 16 kHz, n_fft 1024, hop 320 (50 frames/s), 64 mels up to 8 kHz - cheaper
  than the 22.05 kHz HiFi-GAN setting and enough for additive-synthesis melodies; ``codec="mel_hifigan"``
  selects the pretrained vocoder at its fixed 22.05 kHz / 80-mel setting (keep the patches coarse there);
* 4 s clips (``clip_seconds``) and coarse (8 frames x 16 mels) patches: 26 x 4 tokens per clip.

Metrics (:meth:`MusicPlugin.evaluate`) are the audio representation's: the dataset's checker plus the
FAD-style ``fad`` score, delegated to the ``audio`` plugin held in :attr:`MusicPlugin.mel` (its feature network
works at 22.05 kHz and resamples music's 16 kHz clips itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import MODALITIES
from lumina_core.tokens import TokenBatch

MUSIC_CODEC = {
    "name": "mel_griffinlim",
    "params": {"sample_rate": 16000, "n_fft": 1024, "hop_length": 320, "n_mels": 64, "f_max": 8000.0},
}


@MODALITIES.register("music")
class MusicPlugin(ModalityPlugin):
    """Text-to-music on mel patches (a configured ``audio`` representation, found through the registry).

    Args:
        codec: a CODECS entry (name or ``{name, params}``); default :data:`MUSIC_CODEC` (16 kHz Griffin-Lim).
        patch_size, axes, axis_split, rope_layout, min_log, max_log, learn_sigma: as for ``audio``.
        clip_seconds: default (training) clip length, 4 s.
        compress: None (model space holds log-mels; the default) or a power-law exponent g in (0, 1]: model
            space holds mel magnitudes to the power g, as for ``audio`` (log-space errors decode
            exponentially loud and smear onsets). ``recipes/music/melodies_tiny.yaml`` uses 0.15.
        mean, std: the fixed normalisation of the log-mels (defaults -7, 3.5: the ``melodies`` log-mels at
            16 kHz) or, with ``compress``, of the compressed magnitudes (``melodies`` at g = 0.15: 0.40, 0.218)
            - pick them for the representation in use.
        fad: add the audio plugin's FAD-style ``fad`` score to :meth:`evaluate` (default True).
    """

    name = "music"
    conditions = frozenset({"text", "class", "none"})
    preview_formats = ("wav", "png")
    default_recipe = "recipes/music/melodies_tiny.yaml"

    def __init__(
        self,
        codec: dict[str, Any] | str | None = None,
        patch_size: int | Sequence[int] = (8, 16),
        axes: str = "time_freq",
        axis_split: Sequence[int] = (1, 1),
        rope_layout: str = "blocked",
        clip_seconds: float = 4.0,
        mean: float = -7.0,
        std: float = 3.5,
        min_log: float = -11.512925464970229,
        max_log: float = 2.5,
        compress: float | None = None,
        learn_sigma: bool = False,
        fad: bool = True,
    ) -> None:
        params = dict(codec=codec if codec is not None else MUSIC_CODEC, patch_size=patch_size, axes=axes,
                      axis_split=axis_split, rope_layout=rope_layout, clip_seconds=clip_seconds, mean=mean,
                      std=std, min_log=min_log, max_log=max_log, compress=compress, learn_sigma=learn_sigma,
                      fad=fad)
        super().__init__(**params)
        try:
            self.mel = MODALITIES.build({"name": "audio", "params": params})
        except KeyError as err:
            raise ImportError(
                "the music modality uses the 'audio' modality's log-mel representation and codecs from the "
                "registry; install/enable the audio plugin (entry point 'audio' = lumina_modalities.audio)"
            ) from err
        self.codec = self.mel.codec
        self.sample_rate = self.mel.sample_rate

    # -- everything token-related is the mel representation's ------------------------------------------
    def adapter_spec(self) -> AdapterSpec:
        return self.mel.adapter_spec()

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        return self.mel.tokenize(samples)

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        return self.mel.detokenize(batch)

    def detokenize_mel(self, batch: TokenBatch) -> list[Tensor]:
        return self.mel.detokenize_mel(batch)

    def encode_mel(self, waveform: Tensor) -> Tensor:
        return self.mel.encode_mel(waveform)

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return self.mel.sample_shape(sample)

    def default_shape(self) -> tuple[int, ...]:
        return self.mel.default_shape()

    def layout(self, shapes: Sequence[tuple[int, ...]], device: torch.device | str | None = None) -> TokenBatch:
        return self.mel.layout(shapes, device=device)

    def to(self, device: torch.device | str) -> MusicPlugin:
        self.mel.to(device)
        return self

    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        return self.mel.write_preview(samples, conditions, out_dir, stem)

    def preview_to_tensorboard(self, writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
        self.mel.preview_to_tensorboard(writer, samples, step, tag)

    # -- metrics ---------------------------------------------------------------------------------------
    def evaluate(self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None) -> dict[str, float]:
        """The dataset's checker (``melodies``: key / tempo / density and their shuffled-caption chance) plus
        the FAD-style ``fad`` against the items' clips, computed by the audio representation (``self.mel``)
        at music's sample rate (the feature network resamples to its 22.05 kHz)."""
        return self.mel.evaluate(samples, items, dataset)

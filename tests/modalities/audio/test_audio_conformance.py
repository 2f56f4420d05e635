"""The plugin conformance suite on the audio modality (2-D mel patches and 1-D whole-frame tokens).

The waveform is not recoverable sample by sample from a magnitude log-mel (the phase is gone), so the
suite's waveform round trip is replaced by the representation's round trips: tokens -> log-mel is exact,
and tokenize(detokenize(tokens)) (through the vocoder) comes back close in normalised log-mel units.
"""

from __future__ import annotations

import math

import torch

import lumina_modalities.audio  # noqa: F401  (registers the plugin, codecs and datasets)
from lumina_core.testing import PluginConformance

SR = 22050


def harmonic(seconds: float, f0: float, n_harm: int = 12) -> torch.Tensor:
    """A speech-like harmonic signal: 1/k harmonics with a slow vibrato, 0.2 peak."""
    t = torch.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * torch.sin(2 * math.pi * 3 * t))
    phase = 2 * math.pi * torch.cumsum(f, 0) / SR
    y = sum(torch.sin(k * phase) / k for k in range(1, n_harm + 1))
    return (0.2 * y / y.abs().max())[None]


class _AudioChecks(PluginConformance):
    conditions = ["a loud 440 Hz sine tone for half a second, then silence", "three quiet clicks"]
    dataset_params = {"tones": {"size": 4}}
    skip_datasets = ("audio_folder", "audio_shards")  # need a user's files: tested in test_audio_io.py

    def make_samples(self):
        return [harmonic(0.5, 140.0), harmonic(0.8, 220.0), harmonic(0.3, 330.0)]

    def test_round_trip(self) -> None:
        plugin = self.make_plugin()
        samples = self._samples()
        batch = plugin.tokenize(samples)
        for x, mel in zip(samples, plugin.detokenize_mel(batch), strict=True):  # tokens -> log-mel: exact
            ref = plugin.denormalize(plugin.encode_mel(x))
            torch.testing.assert_close(mel, ref, atol=1e-5, rtol=0)
        out = plugin.detokenize(batch)
        assert [tuple(y.shape) for y in out] == [tuple(x.shape) for x in samples]
        again = plugin.tokenize(out)  # through the vocoder and back
        err = (again.tokens - batch.tokens)[batch.mask].abs().mean().item()
        assert err < 0.2, f"vocoder round trip moved the normalised log-mel tokens by {err:.3f} on average"


class TestAudioConformance(_AudioChecks):
    plugin_name = "audio"
    plugin_params = {"patch_size": [8, 16], "axes": "time_freq", "axis_split": [1, 1], "rope_layout": "blocked",
                     "clip_seconds": 0.5, "fad": False}


class TestAudioFrameConformance(_AudioChecks):
    plugin_name = "audio"
    plugin_params = {"patch_size": 4, "axes": "time", "rope_layout": "interleaved", "clip_seconds": 0.5,
                     "fad": False}


class TestAudioCompressedConformance(_AudioChecks):
    """The power-law compressed representation (``compress``) that ``recipes/audio/tones_tiny.yaml`` uses."""

    plugin_name = "audio"
    plugin_params = {"patch_size": 4, "axes": "time", "rope_layout": "blocked", "clip_seconds": 0.5,
                     "compress": 0.15, "mean": 0.247, "std": 0.183, "fad": False}

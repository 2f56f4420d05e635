"""Music metrics: the ``melodies`` checker plus the FAD-style score, delegated to the audio representation held
by the music plugin (music never imports ``lumina_modalities.audio``; these tests may)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lumina_modalities.music  # noqa: F401  (registers music; audio comes through the registry)
from lumina_core.registry import MODALITIES
from lumina_modalities.music.melodies import MelodyDataset

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "music" / "melodies_tiny.yaml"
VOCAB = {"clip_seconds": 3.0, "tonics": ["C", "E", "G", "A"], "timbres": ["plucked string", "soft organ"]}


def recipe_plugin_params() -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(RECIPE).tasks[0].modality.params, resolve=True)


def test_music_passes_compress_and_fad_through_to_the_audio_representation():
    params = recipe_plugin_params()
    plugin = MODALITIES.build({"name": "music", "params": params})
    assert plugin.mel.compress == params["compress"] == 0.15 and plugin.mel.use_fad
    assert (plugin.mel.mean, plugin.mel.std) == (params["mean"], params["std"])
    off = MODALITIES.build({"name": "music", "params": {**params, "fad": False}})
    assert not off.mel.use_fad
    # the recipe's normalisation fits the recipe's data: about zero mean and unit variance in model space
    ds = MelodyDataset(size=24, split="val", **VOCAB)
    z = torch.cat([plugin.encode_mel(ds[i]["sample"]).flatten() for i in range(len(ds))])
    assert abs(z.mean().item()) < 0.2 and 0.8 < z.std().item() < 1.2, (z.mean().item(), z.std().item())


def test_fad_feature_net_resamples_music_rate(tmp_path):
    """The FAD feature network works at 22.05 kHz; 16 kHz music clips are resampled, not misread."""
    import torchaudio.functional as AF

    from lumina_modalities.audio.fad import FeatureExtractor

    ext = FeatureExtractor(train_items=150, steps=40, cache_dir=tmp_path)
    ds = MelodyDataset(size=4, split="val", **VOCAB)
    clips = [ds[i]["sample"] for i in range(len(ds))]
    at16 = ext.embed(clips, 16000)
    at22 = ext.embed([AF.resample(c, 16000, 22050) for c in clips], 22050)
    misread = ext.embed(clips, 22050)  # 16 kHz samples taken for 22.05 kHz: pitch and tempo x1.38
    np.testing.assert_allclose(at16, at22, rtol=0, atol=1e-4)
    assert np.abs(misread - at16).max() > 100 * np.abs(at22 - at16).max()


def test_music_evaluate_reports_checker_and_fad():
    params = {**recipe_plugin_params()}
    plugin = MODALITIES.build({"name": "music", "params": params})
    ds = MelodyDataset(size=16, split="val", **VOCAB)
    items = [ds[i] for i in range(len(ds))]
    other = MelodyDataset(size=16, split="other", **VOCAB)
    real = plugin.evaluate([other[i]["sample"] for i in range(len(other))], items, ds)
    for key in ("adherence", "key_acc", "tempo_acc", "density_acc", "adherence_shuffled", "fad"):
        assert key in real, sorted(real)
    gen = torch.Generator().manual_seed(0)
    noise = plugin.evaluate([0.05 * torch.randn(1, 48000, generator=gen) for _ in items], items, ds)
    assert real["fad"] < 0.5 * noise["fad"], (real["fad"], noise["fad"])
    # the items' own clips score the checker's ground-truth level and a zero distance
    own = plugin.evaluate([it["sample"] for it in items], items, ds)
    assert own["fad"] == pytest.approx(0.0, abs=1e-3) and own["adherence"] > 0.8  # sqrtm round-off
    off = MODALITIES.build({"name": "music", "params": {**params, "fad": False}})
    assert "fad" not in off.evaluate([it["sample"] for it in items], items, ds)

"""The procedural ``tones`` set: determinism, captions, the adherence checker on ground truth vs mismatched
captions, the plugin's shapes/masks/long layouts, previews, and the FAD-style score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lumina_modalities.audio  # noqa: F401
from lumina_core.registry import MODALITIES
from lumina_modalities.audio import analysis as A
from lumina_modalities.audio.tones import ToneDataset, caption


@pytest.fixture(scope="module")
def items():
    ds = ToneDataset(size=48, split="val")
    return ds, [ds[i] for i in range(len(ds))]


def test_items_are_deterministic_and_splits_differ():
    a, b = ToneDataset(size=8), ToneDataset(size=8)
    for i in range(8):
        x, y = a[i], b[i]
        assert x["condition"] == y["condition"] and torch.equal(x["sample"], y["sample"])
    val = ToneDataset(size=8, split="val")
    assert [a[i]["condition"] for i in range(8)] != [val[i]["condition"] for i in range(8)]
    with pytest.raises(IndexError):
        a[8]


def test_captions_and_ground_truth():
    assert caption({"kind": "tone", "level": "loud", "pitch": 440.0, "duration": 1.0}) == (
        "a loud 440 Hz sine tone for one second, then silence"
    )
    ds = ToneDataset(size=30, kinds=("tone",), durations=(0.5,), levels=("loud",))
    for i in range(5):
        it = ds[i]
        y, meta = A.to_numpy(it["sample"]), it["meta"]
        assert it["sample"].shape == (1, 22050)
        assert abs(A.semitones(A.pitch_hz(y, 22050), meta["pitch"])) < 0.1
        assert abs(A.active_duration(y, 22050) - 0.5) < 0.06
        assert abs(A.loudness_db(y) - (-15.0)) < 0.1


def test_bad_vocabulary_is_reported_all_at_once():
    with pytest.raises(ValueError, match="unknown kind 'bell'.*unknown level 'medium'"):
        ToneDataset(kinds=("tone", "bell"), levels=("medium",))


def test_checker_high_on_ground_truth_low_on_mismatched(items):
    ds, its = items
    scores = ds.score([it["sample"] for it in its], its)
    assert scores["adherence"] > 0.95
    for attr in ("pitch", "duration", "loudness", "onsets", "timbre"):
        assert scores[f"{attr}_acc"] > 0.9, (attr, scores)
    assert scores["adherence_shuffled"] < 0.6
    # silence and noise satisfy almost nothing
    silent = ds.score([torch.zeros(1, 22050) for _ in its], its)
    assert silent["adherence"] < 0.15
    gen = torch.Generator().manual_seed(0)
    noise = ds.score([0.05 * torch.randn(1, 22050, generator=gen) for _ in its], its)
    assert noise["adherence"] < 0.45


def test_checker_survives_the_representation(items):
    """Ground truth tokenized, detokenized (Griffin-Lim) and checked: still clearly above chance."""
    ds, its = items
    plugin = MODALITIES.build({"name": "audio", "params": {"fad": False, "mean": -10.0, "std": 3.25}})
    its = its[:24]
    back = plugin.detokenize(plugin.tokenize([it["sample"] for it in its]))
    scores = ds.score(back, its)
    assert scores["adherence"] > 0.8 and scores["adherence"] > scores["adherence_shuffled"] + 0.3


def test_mixed_durations_batch_with_masks_and_longer_layouts():
    plugin = MODALITIES.build({"name": "audio", "params": {"patch_size": [8, 16], "clip_seconds": 1.0,
                                                           "fad": False}})
    short = ToneDataset(size=2, clip_seconds=0.5, durations=(0.25,))[0]["sample"]
    long = ToneDataset(size=2, clip_seconds=1.5, durations=(0.25,))[0]["sample"]
    batch = plugin.tokenize([short, long])
    nt_short, nt_long = -(-(short.shape[1] // 256 + 1) // 8), -(-(long.shape[1] // 256 + 1) // 8)
    assert batch.lengths.tolist() == [nt_short * 5, nt_long * 5]
    assert batch.positions[1, :, 0].max().item() == nt_long - 1  # time patches
    assert batch.positions[1, :, 1].max().item() == 4  # 80 mels / 16
    assert plugin.adapter_spec().train_extent == (11.0, 5.0)
    # a 3 s clip is three times the training extent: the layout just has more time patches
    three = plugin.layout([(1, plugin.num_samples(3.0))])
    assert three.positions[0, :, 0].max().item() + 1 == -(-(plugin.num_samples(3.0) // 256 + 1) // 8)
    with pytest.raises(ValueError, match=r"mono waveform \(1, T\)"):
        plugin.tokenize([torch.zeros(2, 22050)])
    with pytest.raises(ValueError, match="NaN"):
        plugin.tokenize([torch.full((1, 22050), float("nan"))])
    with pytest.raises(ValueError, match="must divide"):
        MODALITIES.build({"name": "audio", "params": {"patch_size": [4, 7]}})
    # decoding clips impossible overshoots at max_log (louder than a full-scale sine)
    loud = batch.with_tokens(torch.full_like(batch.tokens, 50.0))
    assert max(m.max().item() for m in plugin.detokenize_mel(loud)) == pytest.approx(plugin.max_log)
    less = batch.with_tokens(torch.full_like(batch.tokens, 10.0))
    assert all(torch.equal(a, b) for a, b in zip(plugin.detokenize_mel(loud), plugin.detokenize_mel(less), strict=True))


def test_previews_write_wav_and_png(tmp_path, items):
    from PIL import Image

    ds, its = items
    plugin = MODALITIES.build({"name": "audio", "params": {"fad": False}})
    paths = plugin.write_preview([its[0]["sample"], its[1]["sample"]], [its[0]["condition"], None], tmp_path, "p")
    names = sorted(p.name for p in paths)
    assert names == ["p.txt", "p_0.png", "p_0.wav", "p_1.png", "p_1.wav"]
    import soundfile as sf

    wav, sr = sf.read(tmp_path / "p_0.wav")
    assert sr == 22050 and len(wav) == its[0]["sample"].shape[1]
    img = Image.open(tmp_path / "p_0.png")
    assert img.width == 3 * (its[0]["sample"].shape[1] // 256 + 1) and img.height > 160

    class Writer:
        def __init__(self):
            self.calls = []

        def add_audio(self, tag, snd, step, sample_rate):
            self.calls.append(("audio", tag, tuple(snd.shape), sample_rate))

        def add_image(self, tag, img, step, dataformats):
            self.calls.append(("image", tag, img.shape[-1], dataformats))

    w = Writer()
    plugin.preview_to_tensorboard(w, [its[0]["sample"]], 3, "val")
    assert w.calls == [("audio", "val/audio_0", (1, 22050), 22050), ("image", "val/spectrogram_0", 3, "HWC")]


def test_fad_separates_matching_from_collapsed_sets(tmp_path):
    from lumina_modalities.audio.fad import FeatureExtractor, frechet_distance

    ext = FeatureExtractor(train_items=150, steps=40, cache_dir=tmp_path)
    assert ext.path.is_file()  # cached for the next process
    a = ToneDataset(size=40, split="a")
    b = ToneDataset(size=40, split="b")
    ea = ext.embed([a[i]["sample"] for i in range(40)], 22050)
    eb = ext.embed([b[i]["sample"] for i in range(40)], 22050)
    gen = torch.Generator().manual_seed(0)
    noise = ext.embed([0.05 * torch.randn(1, 22050, generator=gen) for _ in range(40)], 22050)
    same, collapsed = frechet_distance(ea, eb), frechet_distance(ea, noise)
    assert same < 0.5 * collapsed
    assert frechet_distance(ea, ea) == pytest.approx(0.0, abs=1e-6)
    again = FeatureExtractor(train_items=150, steps=40, cache_dir=tmp_path)  # loads, does not retrain
    np.testing.assert_allclose(again.embed([a[0]["sample"]], 22050), ea[:1], rtol=1e-5, atol=1e-6)

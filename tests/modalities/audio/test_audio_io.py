"""Audio files: WAV/FLAC round trips, resampling, over-long clips, unreadable files, folders and shards."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import lumina_modalities.audio  # noqa: F401
from lumina_core.data import build_dataset
from lumina_core.data.robust import CorruptSampleError
from lumina_modalities.audio.io import AudioReadError, load_audio, save_audio

SR = 22050


def tone(seconds: float, f: float = 440.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * math.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_load_round_trip(tmp_path, suffix):
    wav = torch.from_numpy(tone(0.5))[None]
    path = save_audio(tmp_path / f"a{suffix}", wav, SR)
    back = load_audio(path, SR)
    assert back.shape == wav.shape and back.dtype == torch.float32
    assert (back - wav).abs().max().item() < 2e-4  # 16-bit PCM quantisation


def test_wrong_rate_is_resampled_with_a_notice(tmp_path, caplog):
    sf.write(tmp_path / "a.wav", tone(1.0, 440.0, sr=16000), 16000)
    with caplog.at_level(logging.WARNING, logger="lumina.audio"):
        wav = load_audio(tmp_path / "a.wav", SR)
    assert wav.shape == (1, SR)
    assert any("resampled from 16000 Hz to 22050 Hz" in r.getMessage() for r in caplog.records)
    spec = np.abs(np.fft.rfft(wav[0].numpy()))
    assert abs(np.argmax(spec) * SR / wav.shape[-1] - 440.0) < 2.0  # the pitch survives resampling


def test_stereo_is_averaged(tmp_path):
    left, right = tone(0.2), np.zeros(int(0.2 * SR), np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), SR)
    wav = load_audio(tmp_path / "s.wav", SR)
    assert wav.shape == (1, left.shape[0])
    np.testing.assert_allclose(wav[0].numpy(), left / 2, atol=1e-4)


def test_over_long_clip_is_refused_or_cropped(tmp_path, caplog):
    sf.write(tmp_path / "long.wav", tone(3.0), SR)
    with pytest.raises(ValueError, match=r"long\.wav lasts 3\.00 s, longer than the configured maximum of 2"):
        load_audio(tmp_path / "long.wav", SR, max_seconds=2.0)
    with caplog.at_level(logging.WARNING, logger="lumina.audio"):
        wav = load_audio(tmp_path / "long.wav", SR, max_seconds=2.0, on_long="crop")
    assert wav.shape == (1, 2 * SR)
    assert any("cropped" in r.getMessage() for r in caplog.records)


def test_unreadable_and_empty_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt not really audio")
    with pytest.raises(AudioReadError, match="broken.wav") as err:
        load_audio(bad, SR)
    assert isinstance(err.value, CorruptSampleError)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(AudioReadError, match="empty.wav: the audio file has no samples"):
        load_audio(tmp_path / "empty.wav", SR)
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "nan.wav", torch.full((1, 100), float("nan")), SR)


def _make_folder(root, n_good=4, n_bad=2):
    root.mkdir()
    for i in range(n_good):
        sf.write(root / f"good{i}.flac" if i % 2 else root / f"good{i}.wav", tone(0.3 + 0.1 * i, 220.0 * (i + 1)), SR)
        (root / f"good{i}.txt").write_text(f"a tone number {i}\n")
    for i in range(n_bad):
        (root / f"bad{i}.wav").write_bytes(b"\x00\x01garbage")
        (root / f"bad{i}.txt").write_text("never read")


def test_folder_skips_and_counts_unreadable_files(tmp_path):
    _make_folder(tmp_path / "clips")
    ds = build_dataset("audio_folder", {"root": str(tmp_path / "clips")}, "train")  # skip policy applied
    assert len(ds) == 6
    items = [ds[i] for i in range(len(ds))]
    assert all(it["sample"].dim() == 2 and it["sample"].shape[0] == 1 for it in items)
    assert {it["condition"] for it in items} == {f"a tone number {i}" for i in range(4)}
    assert ds.skipped == 2  # each broken file counted once per pass
    assert "skipped 2 of 8 unreadable samples" in ds.summary() and "bad0.wav" in ds.summary()


def test_shards_packed_from_a_folder(tmp_path):
    from lumina_core.data.shards import pack_folder

    _make_folder(tmp_path / "clips", n_good=3, n_bad=1)
    pack_folder(tmp_path / "clips", tmp_path / "shards", shard_size=2)
    ds = build_dataset("audio_shards", {"path": str(tmp_path / "shards")}, "train")
    assert len(ds) == 4
    folder = build_dataset("audio_folder", {"root": str(tmp_path / "clips")}, "train")
    by_caption = {it["condition"]: it["sample"] for it in (folder[i] for i in range(len(folder)))}
    got = [ds[i] for i in range(len(ds))]
    assert ds.skipped == 1
    for it in got:
        torch.testing.assert_close(it["sample"], by_caption[it["condition"]])

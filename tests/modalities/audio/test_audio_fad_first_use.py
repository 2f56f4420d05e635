"""The FAD-style score's feature network is trained on first use on a machine: that is announced."""

from __future__ import annotations

from lumina_modalities.audio.fad import FeatureExtractor


def test_training_the_feature_network_says_so_and_the_cached_one_is_silent(capsys, tmp_path):
    FeatureExtractor(train_items=8, steps=2, cache_dir=tmp_path)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("first use on this machine: training the FAD-style audio feature network")
    assert err[0].endswith(f"(once; cached in {tmp_path})")
    FeatureExtractor(train_items=8, steps=2, cache_dir=tmp_path)  # cached: no word
    assert capsys.readouterr().err == ""

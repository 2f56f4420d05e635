"""The FID-style score's feature network is trained on first use on a machine: that minute is announced."""

from __future__ import annotations

from lumina_modalities.image.fid import train_feature_net


def test_training_the_feature_network_says_so_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path))
    train_feature_net(num_items=8, epochs=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "first use on this machine: training the FID-style feature network on procedural shapes "
        f"(once; cached in {tmp_path})"
    )
    assert err[-1].startswith("training the FID-style feature network on procedural shapes: 1 steps")

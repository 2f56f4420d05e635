"""The cold path of every artefact cached outside the repository: an empty ``LUMINA_CACHE_DIR`` (a fresh
machine) must work, including when the first use happens inside evaluation (no_grad / inference mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def test_suite_never_uses_the_home_cache():
    import os

    from lumina_core.paths import cache_dir

    assert Path(os.environ["LUMINA_CACHE_DIR"]) == cache_dir()
    assert not str(cache_dir()).startswith(str(Path.home() / ".cache"))


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    from lumina_core.paths import cache_dir

    monkeypatch.delenv("LUMINA_CACHE_DIR", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "lumina"
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fid_feature_net_trains_from_an_empty_cache_inside_evaluation(monkeypatch, tmp_path, mode):
    from lumina_modalities.image import fid

    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fid, "_CACHE", {})
    # a smaller fit: the path, not the quality, is tested. (Setting ``fid._TRAIN_ITEMS`` did not do it: the
    # default of ``train_feature_net(num_items=_TRAIN_ITEMS)`` is bound when the function is defined, so the
    # full 3000-item, 3-epoch fit ran here, twice.) ``feature_net`` still calls the real function, with its
    # own switch back to gradients, from inside the caller's no_grad / inference mode.
    fit = fid.train_feature_net
    monkeypatch.setattr(fid, "train_feature_net", lambda: fit(num_items=128))
    g = torch.Generator().manual_seed(0)
    real = [torch.rand(3, 16, 16, generator=g) * 2 - 1 for _ in range(4)]
    gen = [torch.rand(3, 16, 16, generator=g) * 2 - 1 for _ in range(4)]
    ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with ctx:
        score = fid.fid_score(gen, real)
    assert score == score and score >= 0  # finite, not NaN
    saved = tmp_path / f"fid_{fid.FEATURE_NET_VERSION}.safetensors"
    assert saved.is_file()
    # a second process would load the saved weights: same features as the trained network
    trained = fid._CACHE[fid.FEATURE_NET_VERSION]
    monkeypatch.setattr(fid, "_CACHE", {})
    loaded = fid.feature_net()
    x = torch.rand(2, 3, 32, 32, generator=g)
    torch.testing.assert_close(loaded(x), trained(x))


def test_fad_embedding_net_trains_from_an_empty_cache_inside_evaluation(tmp_path):
    from lumina_modalities.audio.fad import FeatureExtractor

    with torch.inference_mode():
        ext = FeatureExtractor(train_items=40, steps=3, cache_dir=tmp_path)
    assert ext.path.is_file() and ext.path.parent == tmp_path
    waves = [torch.sin(torch.arange(4000) * 0.1 * (i + 1)) for i in range(3)]
    again = FeatureExtractor(train_items=40, steps=3, cache_dir=tmp_path)  # loads, does not retrain
    assert (ext.embed(waves, 16000) == again.embed(waves, 16000)).all()


def test_caption_feature_cache_cold_then_warm_on_disk(tmp_path):
    """The on-disk caption cache: an empty folder is filled on first use; a second cache over the same folder
    (a later run) reads the same features without calling the encoder."""
    from lumina_core.conditioning import CachedConditioner, FeatureCache
    from lumina_core.testing.conditioners import HashTextConditioner

    class Counting(HashTextConditioner):
        calls = 0

        def encode(self, values, device=None):
            Counting.calls += len(values)
            return super().encode(values, device=device)

    folder = tmp_path / "captions"
    cold = CachedConditioner(Counting(dim=8), cache=FeatureCache(folder, namespace="hash-8"))
    first = cold.encode(["a red circle", "a blue square"])
    assert Counting.calls == 2 and any(folder.rglob("*.safetensors"))
    warm = CachedConditioner(Counting(dim=8), cache=FeatureCache(folder, namespace="hash-8"))
    again = warm.encode(["a red circle", "a blue square"])
    assert Counting.calls == 2  # read from disk
    assert torch.equal(first.context, again.context) and torch.equal(first.mask, again.mask)

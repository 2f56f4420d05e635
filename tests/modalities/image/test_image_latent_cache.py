"""The image plugin's on-disk latent cache: each image goes through the autoencoder once, the cached path gives
exactly the uncached latents (also when latents are sampled from the posterior), and nothing stale is read."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from lumina_modalities.image import ImagePlugin  # noqa: E402


def save_vae(path, seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, sample_size=16, scaling_factor=0.13025,
    ).save_pretrained(path)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return save_vae(tmp_path_factory.mktemp("vae"))


def plugin(vae_path, cache=False, **ae):
    auto = {"name": "autoencoder_kl", "params": {"path": str(vae_path), **ae}}
    return ImagePlugin(patch_size=2, image_size=16, autoencoder=auto, latent_cache=cache, fid=False)


def count_encodes(p: ImagePlugin, monkeypatch) -> list[int]:
    """A spy on the real autoencoder's encoder: the batch size of every call (the encoder still runs)."""
    calls: list[int] = []
    real = p.codec.vae.encode

    def spy(x, *a, **k):
        calls.append(int(x.shape[0]))
        return real(x, *a, **k)

    monkeypatch.setattr(p.codec.vae, "encode", spy)
    return calls


def images(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 16, 16, generator=g) * 2 - 1 for _ in range(n)]


def test_each_image_is_encoded_once_and_tokens_equal_the_uncached_ones(vae, tmp_path, monkeypatch):
    xs = images(3)
    want = plugin(vae).tokenize(xs)
    cached = plugin(vae, str(tmp_path / "latents"))
    calls = count_encodes(cached, monkeypatch)
    for _ in range(3):  # three epochs over the same images
        got = cached.tokenize(xs)
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.positions, want.positions)
    assert sum(calls) == 3 and cached.latent_cache.encoded == 3 and cached.latent_cache.hits == 6
    assert len(list((tmp_path / "latents").rglob("*.safetensors"))) == 3
    # a later run (a new plugin over the same folder) reads every latent back: no encoder call at all
    again = plugin(vae, str(tmp_path / "latents"))
    calls2 = count_encodes(again, monkeypatch)
    assert torch.equal(again.tokenize(xs).tokens, want.tokens) and calls2 == []
    # a changed image is a new entry
    changed = [xs[0].clone()]
    changed[0][0, 0, 0] += 0.5
    again.tokenize(changed)
    assert calls2 == [1]


def test_other_weights_or_size_never_read_a_stale_latent(vae, tmp_path, monkeypatch):
    folder = str(tmp_path / "latents")
    x = images(1)
    plugin(vae, folder).tokenize(x)
    other_vae = save_vae(tmp_path / "other_vae", seed=1)
    other = plugin(other_vae, folder)
    calls = count_encodes(other, monkeypatch)
    assert torch.equal(other.tokenize(x).tokens, plugin(other_vae).tokenize(x).tokens) and calls == [1]
    bigger = plugin(vae, folder)
    calls = count_encodes(bigger, monkeypatch)
    bigger.tokenize([torch.nn.functional.interpolate(x[0][None], size=(32, 32))[0]])
    assert calls == [1]


def test_sampled_latents_are_drawn_afresh_from_the_cached_posterior(vae, tmp_path):
    xs = images(2)
    plain, cached = plugin(vae, sample_posterior=True), plugin(vae, str(tmp_path), sample_posterior=True)
    for _ in range(2):  # a miss, then a hit: both equal the uncached draw with the same global seed
        torch.manual_seed(7)
        want = plain.tokenize(xs).tokens
        torch.manual_seed(7)
        assert torch.equal(cached.tokenize(xs).tokens, want)
    torch.manual_seed(8)
    assert not torch.equal(cached.tokenize(xs).tokens, want)  # a new draw, not a frozen sample
    assert cached.latent_cache.encoded == 2


def test_a_damaged_entry_is_encoded_again(vae, tmp_path):
    x = images(1)
    p = plugin(vae, str(tmp_path))
    want = p.tokenize(x).tokens
    (entry,) = tmp_path.rglob("*.safetensors")
    entry.write_bytes(b"not a safetensors file")
    again = plugin(vae, str(tmp_path))
    assert torch.equal(again.tokenize(x).tokens, want) and again.latent_cache.encoded == 1


def test_latent_cache_without_an_autoencoder_is_a_clear_error():
    with pytest.raises(ValueError, match="latent_cache needs an autoencoder"):
        ImagePlugin(patch_size=2, image_size=16, latent_cache=True)


def test_default_folder_is_under_the_cache_dir(vae, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    p = plugin(vae, True)
    p.tokenize(images(1))
    assert p.latent_cache.directory == tmp_path / "cache" / "latents"
    assert len(list(p.latent_cache.directory.rglob("*.safetensors"))) == 1

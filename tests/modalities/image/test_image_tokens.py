"""Image plugin tokens: released patch order, round trips (pixel and latent), mixed sizes, layout."""

from __future__ import annotations

import pytest
import torch

from lumina_core.registry import CODECS, MODALITIES
from lumina_modalities.image import ImagePlugin
from lumina_modalities.image.patches import patchify, unpatchify


def test_registered_by_name():
    import lumina_modalities.image  # noqa: F401

    assert MODALITIES.get("image") is ImagePlugin
    assert "autoencoder_kl" in CODECS
    plugin = MODALITIES.build({"name": "image", "params": {"patch_size": 4}})
    assert plugin.conditions == {"text", "class", "none"}


def test_released_patch_order_matches_manual_permutation():
    """tokens[i*gw + j, c*p*p + a*p + b] == x[c, i*p + a, j*p + b]  ((C, ph, pw) per token)."""
    c, h, w, p = 3, 6, 8, 2
    x = torch.arange(c * h * w, dtype=torch.float32).reshape(c, h, w)
    tokens = patchify(x, p)
    gh, gw = h // p, w // p
    expected = torch.empty(gh * gw, c * p * p)
    for i in range(gh):
        for j in range(gw):
            for ch in range(c):
                for a in range(p):
                    for b in range(p):
                        expected[i * gw + j, ch * p * p + a * p + b] = x[ch, i * p + a, j * p + b]
    assert torch.equal(tokens, expected)
    # and the same as einops' "c (h ph) (w pw) -> (h w) (c ph pw)"
    from einops import rearrange

    assert torch.equal(tokens, rearrange(x, "c (h ph) (w pw) -> (h w) (c ph pw)", ph=p, pw=p))
    assert torch.equal(unpatchify(tokens, (gh, gw), c, p), x)


def test_pixel_round_trip_and_positions():
    plugin = ImagePlugin(patch_size=2, channels=3, image_size=8)
    x = torch.rand(3, 8, 12) * 2 - 1
    batch = plugin.tokenize([x])
    assert batch.tokens.shape == (1, 4 * 6, 12)
    assert batch.shapes == [(4, 6)]
    # row-major (h, w) patch coordinates
    assert batch.positions[0, 0].tolist() == [0.0, 0.0]
    assert batch.positions[0, 1].tolist() == [0.0, 1.0]
    assert batch.positions[0, 6].tolist() == [1.0, 0.0]
    assert torch.equal(plugin.detokenize(batch)[0], x)


def test_mixed_sizes_are_padded_with_masks():
    plugin = ImagePlugin(patch_size=4, channels=3, image_size=16)
    xs = [torch.randn(3, 16, 16), torch.randn(3, 8, 24), torch.randn(3, 4, 4)]
    batch = plugin.tokenize(xs)
    assert batch.tokens.shape == (3, 16, 48)
    assert batch.lengths.tolist() == [16, 12, 1]
    assert not batch.mask[1, 12:].any() and batch.mask[1, :12].all()
    assert torch.all(batch.tokens[2, 1:] == 0)
    for x, y in zip(xs, plugin.detokenize(batch), strict=True):
        assert torch.equal(x, y)
    # a padded batch holds exactly the tokens of each sample alone
    alone = plugin.tokenize([xs[1]])
    assert torch.equal(batch.tokens[1, :12], alone.tokens[0])
    assert torch.equal(batch.positions[1, :12], alone.positions[0])


def test_wider_predictions_use_the_first_channels():
    plugin = ImagePlugin(patch_size=2, channels=3, image_size=8)
    spec = plugin.adapter_spec().with_learn_sigma()  # a task with learn_sigma
    assert (spec.in_dim, spec.out_dim, spec.num_axes, spec.axis_split) == (12, 24, 2, (1, 1))
    assert spec.train_extent == (4.0, 4.0) and spec.rope_layout == "interleaved"
    x = torch.randn(3, 8, 8)
    batch = plugin.tokenize([x])
    wide = batch.with_tokens(torch.cat([batch.tokens, torch.randn_like(batch.tokens)], dim=-1))
    assert torch.equal(plugin.detokenize(wide)[0], x)


def test_layout_for_unseen_larger_sizes():
    plugin = ImagePlugin(patch_size=2, channels=3, image_size=16)
    lay = plugin.layout([(3, 32, 64), (3, 16, 16)])
    assert lay.shapes == [(16, 32), (8, 8)]
    assert lay.positions[0, :, 0].max() == 15 and lay.positions[0, :, 1].max() == 31
    assert torch.all(lay.tokens == 0)
    ref = plugin.tokenize([torch.zeros(3, 32, 64), torch.zeros(3, 16, 16)])
    assert torch.equal(lay.positions, ref.positions) and torch.equal(lay.mask, ref.mask)
    assert plugin.default_shape() == (3, 16, 16)


@pytest.mark.parametrize("bad", [torch.randn(3, 7, 8), torch.randn(1, 8, 8), torch.randn(8, 8)])
def test_bad_images_are_refused(bad):
    plugin = ImagePlugin(patch_size=2, channels=3, image_size=8)
    with pytest.raises(ValueError):
        plugin.tokenize([bad])


def _tiny_vae(path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=0.13025,
    )
    vae.save_pretrained(path)
    return vae


def test_latent_round_trip_through_a_local_autoencoder(tmp_path):
    vae = _tiny_vae(tmp_path / "vae")
    plugin = ImagePlugin(
        patch_size=2,
        channels=3,
        image_size=16,
        autoencoder={
            "name": "autoencoder_kl",
            "params": {"path": str(tmp_path / "vae"), "shift_factor": 0.1},
        },
    )
    assert plugin.factor == 2 and plugin.multiple == 4
    spec = plugin.adapter_spec()
    assert spec.in_dim == 4 * 2 * 2 and spec.train_extent == (4.0, 4.0)
    x = torch.rand(3, 16, 24) * 2 - 1
    batch = plugin.tokenize([x])
    assert batch.shapes == [(4, 6)] and batch.tokens.shape == (1, 24, 16)
    with torch.no_grad():
        z = vae.encode(x[None]).latent_dist.mode()
        # tokens are the normalised latent, patchified in the released order
        assert torch.allclose(batch.tokens[0], patchify(((z - 0.1) * 0.13025)[0], 2), atol=1e-5)
        # detokenize = the autoencoder's decoding of the de-normalised latent
        expected = vae.decode(z).sample[0]
    out = plugin.detokenize(batch)[0]
    assert out.shape == x.shape
    assert torch.allclose(out, expected, atol=1e-4)
    assert plugin.layout([(3, 16, 24)]).shapes == [(4, 6)]


def test_autoencoder_path_must_exist(tmp_path):
    with pytest.raises(ValueError, match="AutoencoderKL"):
        CODECS.build({"name": "autoencoder_kl", "params": {"path": str(tmp_path / "missing")}})

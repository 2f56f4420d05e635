"""Latent multi-view tokens through the image plugin's autoencoder, reached by name in CODECS."""

import pytest
import torch

from lumina_modalities.multiview import MultiviewPlugin
from lumina_modalities.multiview.cameras import orbit, plucker, relative_to_first
from lumina_modalities.multiview.plugin import attach_cameras, patchify


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    path = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=16,
    )  # fmt: skip
    vae.save_pretrained(path)
    return str(path)


def test_latent_tokens_cameras_and_decoding(vae_path):
    node = {"name": "autoencoder_kl", "params": {"path": vae_path, "scaling_factor": 1.0}}
    plugin = MultiviewPlugin(views=2, size=16, patch=2, autoencoder=node)
    codec = plugin.codec
    assert plugin.factor == 2 and plugin.token_dim == 4 * 2 * 2
    spec = plugin.adapter_spec()
    assert spec.in_dim == 16 and spec.train_extent == (2.0, 4.0, 4.0) and spec.token_cond_dim == 6 * 4
    c2w = orbit(2, 20.0, 3.2)
    x = attach_cameras(torch.rand(2, 3, 16, 16) * 2 - 1, c2w)
    batch = plugin.tokenize([x])
    z = codec.encode(x[:, :3])  # (2, 4, 8, 8)
    assert torch.allclose(batch.tokens[0], patchify(z, 2), atol=1e-6)
    # rays of the latent pixels (8 x 8 per view), independent of how many image pixels each covers
    assert torch.allclose(
        batch.token_cond[0], patchify(plucker(relative_to_first(c2w.double()), 8, 8, 40.0), 2), atol=1e-5
    )
    out = plugin.detokenize(batch)[0]
    assert out.shape == x.shape and torch.equal(out[:, 3:], x[:, 3:])
    assert torch.allclose(out[:, :3], codec.decode(z), atol=1e-5)
    layout = plugin.layout([plugin.sample_shape(x)])  # no autoencoder call needed
    assert torch.equal(layout.positions, batch.positions) and torch.allclose(
        layout.token_cond, batch.token_cond
    )
    with pytest.raises(ValueError, match="multiple of patch x autoencoder factor = 4"):
        MultiviewPlugin(size=18, patch=2, autoencoder=node)

"""The video plugin on the real trunk: mixed-length batches and clips longer than the training length."""

from __future__ import annotations

import pytest
import torch
from lumina_video.modality import VideoPlugin
from lumina_video.moving_shapes import MovingShapes

from lumina_core.model import LuminaModel, NextDiTConfig, RopeScaling
from lumina_core.tokens import Condition


def _model(plugin: VideoPlugin) -> LuminaModel:
    torch.manual_seed(0)
    model = LuminaModel(
        NextDiTConfig(dim=64, n_layers=2, n_heads=2, n_kv_heads=1, multiple_of=32),
        {"video": plugin.adapter_spec()},
    )
    with torch.no_grad():  # zero-initialised gates/final layers would hide everything: perturb every weight
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_mixed_length_batch_matches_each_clip_alone():
    plugin = VideoPlugin(patch=(2, 4, 4), frames=8, size=16)
    model = _model(plugin)
    clips = [
        MovingShapes(num=1, frames=t, size=s, seed=i)[0]["sample"]
        for i, (t, s) in enumerate([(8, 16), (4, 8), (12, 16)])
    ]
    batch = plugin.tokenize(clips)
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        together = model.velocity(batch, t, Condition(), task="video")
        for i, clip in enumerate(clips):
            alone = model.velocity(plugin.tokenize([clip]), t[i : i + 1], Condition(), task="video")[0]
            n = alone.shape[0]
            assert torch.allclose(together[i, :n], alone, atol=1e-5), (together[i, :n] - alone).abs().max()


def test_longer_clip_with_pi_scaling_rescales_only_the_time_axis():
    """Known answer: PI with the scale derived from train_extent (8 frames) on a 24-frame clip equals
    unscaled RoPE on positions whose t is divided by 3; h and w are inside the trained extent, untouched."""
    plugin = VideoPlugin(patch=(1, 4, 4), frames=8, size=16)
    model = _model(plugin)
    long = plugin.layout([plugin.longer_shape(24)])
    x = long.with_tokens(torch.randn(long.tokens.shape, generator=torch.Generator().manual_seed(1)))
    t = torch.tensor([0.4])
    with torch.no_grad():
        scaled = model.velocity(x, t, Condition(), task="video", rope_scaling=RopeScaling(kind="pi"))
        squeezed = x.positions.clone()
        squeezed[..., 0] /= 3
        manual = model.velocity(
            type(x)(x.tokens, squeezed, x.mask, x.shapes), t, Condition(), task="video", rope_scaling=None
        )
        plain = model.velocity(x, t, Condition(), task="video", rope_scaling=None)
    assert torch.allclose(scaled, manual, atol=1e-5), (scaled - manual).abs().max()
    assert not torch.allclose(scaled, plain, atol=1e-3)


@pytest.mark.parametrize("kind", ["ntk", "freq_aware", "time_aware"])
def test_generate_longer_clips_than_trained(kind):
    from lumina_core.sampling import generate

    plugin = VideoPlugin(patch=(1, 4, 4), frames=4, size=8)
    model = _model(plugin)
    shape = plugin.longer_shape(12)
    clips = generate(
        model,
        plugin,
        None,
        "video",
        None,
        shapes=[shape, plugin.default_shape()],
        steps=2,
        solver="euler",
        grid={"name": "uniform", "params": {}},
        rope_scaling={"name": kind, "params": {}},
    )
    assert [tuple(c.shape) for c in clips] == [(12, 3, 8, 8), (4, 3, 8, 8)]
    assert all(torch.isfinite(c).all() for c in clips)

"""generate(init=..., strength=...): SDEdit from the noised input, for every plugin that tokenizes a sample.

Strength 0 returns the input (as the plugin's tokenize/detokenize reconstructs it) without a model call;
strength 1 ignores it (the same samples as plain generation from the same seed); in between, on a Gaussian
data distribution whose flow map is known, the result is the closed-form map of the noised input."""

from __future__ import annotations

import math

import pytest
import torch
from fixtures.toy_plugin import OracleModel, SeqPlugin

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.registry import MODALITIES
from lumina_core.sampling import generate, token_noise


def plugin_and_inits(name: str):
    import lumina_modalities  # noqa: F401 - registers the built-in plugins

    g = torch.Generator().manual_seed(0)
    if name == "image":
        plugin = MODALITIES.build({"name": "image", "params": {"image_size": 8, "fid": False}})
        inits = [torch.rand(3, 8, 8, generator=g) * 2 - 1 for _ in range(2)]
    elif name == "audio":
        plugin = MODALITIES.build({"name": "audio", "params": {"clip_seconds": 0.1, "fad": False}})
        n = int(0.1 * plugin.sample_rate)
        tt = torch.arange(n) / plugin.sample_rate
        inits = [0.3 * torch.sin(2 * math.pi * f * tt)[None] for f in (440.0, 660.0)]
    else:
        plugin = MODALITIES.build({"name": "pointcloud", "params": {"num_points": 64}})
        inits = [torch.randn(64, 3, generator=g) * torch.tensor([1.0, 0.5, 0.2]) for _ in range(2)]
    return plugin, inits


def random_model(plugin) -> LuminaModel:
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig(dim=32, n_layers=1, n_heads=2), {"task": plugin.adapter_spec()})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # the default init predicts zero: make the field non-trivial
    return model.eval()


@pytest.mark.parametrize("name", ["image", "audio", "pointcloud"])
def test_strength_zero_returns_the_input_and_strength_one_ignores_it(name):
    plugin, inits = plugin_and_inits(name)
    model = random_model(plugin)
    kw = dict(steps=3, solver="euler", seed=5)
    out, nfe = generate(model, plugin, None, "task", None, init=inits, strength=0.0, return_nfe=True, **kw)
    assert nfe == 0
    reconstructed = plugin.detokenize(plugin.tokenize(inits))
    for o, r in zip(out, reconstructed, strict=True):
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)
    if name == "image":  # pixels round-trip exactly
        for o, x in zip(out, inits, strict=True):
            torch.testing.assert_close(o, x, atol=1e-6, rtol=0)

    shapes = [plugin.sample_shape(x) for x in inits]
    plain = generate(model, plugin, None, "task", None, shapes=shapes, **kw)
    full = generate(model, plugin, None, "task", None, init=inits, strength=1.0, **kw)
    other = generate(model, plugin, None, "task", None, init=[-x for x in inits], strength=1.0, **kw)
    for p, f, o in zip(plain, full, other, strict=True):
        assert torch.equal(p, f) and torch.equal(f, o)
    half = generate(model, plugin, None, "task", None, init=inits, strength=0.5, **kw)
    assert not torch.allclose(half[0], plain[0], atol=1e-3) and not torch.allclose(half[0], reconstructed[0], atol=1e-3)


@pytest.mark.parametrize("strength", [0.3, 0.7])
def test_sdedit_follows_the_exact_flow_map_of_a_gaussian(strength):
    """Data N(mu, s^2): the flow's marginal at t is N(t mu, (t s)^2 + (1 - t)^2), so the ODE from t0 maps
    x_t0 to mu + s (x_t0 - t0 mu) / sqrt((t0 s)^2 + (1 - t0)^2); x_t0 = t0 x_init + (1 - t0) noise."""
    mu, s = 0.5, 0.3
    plugin, model = SeqPlugin(channels=2, patch=2), OracleModel(mu=mu, std=s)
    g = torch.Generator().manual_seed(2)
    inits = [torch.randn(2, 16, generator=g), torch.randn(2, 8, generator=g)]
    out, nfe = generate(model, plugin, None, "seq", None, init=inits, strength=strength, steps=40, solver="rk4",
                        grid="uniform", seed=3, return_nfe=True)
    t0 = 1 - strength
    assert nfe == 4 * sum(1 for k in range(41) if k / 40 > t0 + 1e-9)
    layout = plugin.layout([tuple(x.shape) for x in inits])
    noise = plugin.detokenize(layout.with_tokens(token_noise(layout, 3)))
    sigma = math.sqrt((t0 * s) ** 2 + (1 - t0) ** 2)
    for o, x, z in zip(out, inits, noise, strict=True):
        expected = mu + s * (t0 * x + (1 - t0) * z - t0 * mu) / sigma
        torch.testing.assert_close(o, expected, atol=1e-4, rtol=0)


def test_bad_init_and_strength_are_explained():
    plugin, model = SeqPlugin(), OracleModel()
    x = [torch.randn(2, 16)]
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        generate(model, plugin, None, "seq", None, init=x, strength=1.5)
    with pytest.raises(ValueError, match="strength needs init"):
        generate(model, plugin, None, "seq", None, shapes=[(2, 16)], strength=0.5)
    with pytest.raises(ValueError, match="leave shapes out"):
        generate(model, plugin, None, "seq", None, shapes=[(2, 8)], init=x, strength=0.5)
    with pytest.raises(ValueError, match="1 init samples for 2 samples"):
        generate(model, plugin, None, "seq", None, shapes=[(2, 16), (2, 16)], init=x, strength=0.5)

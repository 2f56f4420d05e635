"""Sampling with the model in bf16 (issue #18): ``generate(..., precision="bf16")`` runs the trunk under bf16
autocast while the ODE state, the guidance and the solver stay fp32; samples agree with fp32 sampling to
bf16 accuracy, and a bad precision name is a clear error."""

from __future__ import annotations

import pytest
import torch

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.registry import CONDITIONERS, MODALITIES
from lumina_core.sampling import generate


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    plugin = MODALITIES.build({"name": "image", "params": {"patch_size": 2, "channels": 1, "image_size": 8}})
    enc = CONDITIONERS.build({"name": "class", "params": {"num_classes": 3, "dim": 16}})
    model = LuminaModel(
        NextDiTConfig(dim=32, n_layers=2, n_heads=2, n_kv_heads=1, context_dim=16),
        {"img": plugin.adapter_spec()},
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a non-trivial field: the zero-initialised gates and final layer get values too
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return plugin, enc, model


def test_bf16_sampling_runs_the_model_in_bf16_and_integrates_in_fp32(setup):
    plugin, enc, model = setup
    seen = []
    hook = model.trunk.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    kw = dict(steps=6, solver="midpoint", grid="uniform", cfg_scale=2.0, seed=3)
    try:
        fp32 = generate(model, plugin, enc, "img", [0, 1, 2], **kw)
        assert set(seen) == {torch.float32}
        seen.clear()
        bf16 = generate(model, plugin, enc, "img", [0, 1, 2], precision="bf16", **kw)
        assert set(seen) == {torch.bfloat16}
    finally:
        hook.remove()
    for a, b in zip(bf16, fp32, strict=True):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        rel = ((a - b).norm() / b.norm()).item()
        assert 0 < rel < 5e-2, rel  # bf16 rounding: different, but close
    again = generate(model, plugin, enc, "img", [0, 1, 2], precision="bf16", **kw)
    for a, b in zip(again, bf16, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # repeatable


def test_bad_precision_is_a_clear_error(setup):
    plugin, enc, model = setup
    with pytest.raises(ValueError, match=r"sampling precision must be one of \('fp32', 'bf16', 'auto'\); got 'fp16'"):
        generate(model, plugin, enc, "img", [0], steps=2, precision="fp16")

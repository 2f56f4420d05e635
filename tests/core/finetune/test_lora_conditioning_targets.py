"""``train.lora.adapt_conditioning`` (default on): LoRA also adapts each modulated block's adaLN projection and
the caption embedder's projection, the weights a full fine-tune onto a new domain moves most. The measured
benchmark (docs/lora.md) named the modules explicitly; the default must select exactly those, in both trunk
families, and nothing when switched off."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lumina_core.finetune import target_modules
from lumina_core.finetune.lora import CONDITIONING_TARGETS, DEFAULT_TARGETS
from lumina_core.finetune.settings import resolved_targets
from lumina_core.model import LuminaModel, NextDiTConfig

pytest.importorskip("peft")
#: the targets of the benchmark's arm (benchmarks/results/lora_vs_full_conditioning.json)
MEASURED = [
    r"attention\.wqkv", r"attention\.wkv_y", r"attention\.wo", r"feed_forward\.w13", r"feed_forward\.w2",
    r"layers\.\d+\.adaLN_modulation\.1", r"cap_embedder\.net\.1",
]  # fmt: skip


def model(family: str) -> LuminaModel:
    return LuminaModel(
        NextDiTConfig.from_dict({"preset": "tiny", "family": family, "n_layers": 2, "context_dim": 24})
    )


def test_the_default_adapts_the_modules_the_benchmark_measured():
    m = model("next_dit")
    chosen = target_modules(m, resolved_targets(None, True))
    assert chosen == target_modules(m, MEASURED)
    assert "trunk.layers.1.adaLN_modulation.1" in chosen and "trunk.cap_embedder.net.1" in chosen


def test_switched_off_the_blocks_projections_only():
    m = model("next_dit")
    chosen = target_modules(m, resolved_targets(None, False))
    assert chosen == target_modules(m, list(DEFAULT_TARGETS))
    assert not any("adaLN" in n or "cap_embedder" in n for n in chosen)


def test_unified_family_adapts_its_modulated_blocks_and_caption_projection():
    m = model("unified")
    chosen = target_modules(m, resolved_targets(None, True))
    extra = sorted(set(chosen) - set(target_modules(m, list(DEFAULT_TARGETS))))
    mods = [n for n, _ in m.named_modules()]
    expected = sorted(
        n for n in mods
        if n.endswith(".adaLN_modulation.1") and (".layers." in n or ".noise_refiner." in n)
    ) + ["trunk.cap_embedder.1"]  # fmt: skip
    assert extra == sorted(expected)
    assert not any("context_refiner" in n and "adaLN" in n for n in chosen)  # unmodulated: none there


def test_explicit_targets_are_taken_as_given():
    """A recipe that names its targets (to narrow or widen the adapter) gets exactly those."""
    assert resolved_targets([r"attention\.wo"], True) == [r"attention\.wo"]
    assert resolved_targets([r"attention\.wo"], False) == [r"attention\.wo"]
    m = model("next_dit")
    assert target_modules(m, resolved_targets([r"attention\.wo"], True)) == [
        "trunk.layers.0.attention.wo", "trunk.layers.1.attention.wo",
    ]  # fmt: skip


def test_the_recipe_default_is_on_and_validate_accepts_the_switch(tmp_path):
    from fixtures.toy_plugin import tiny_recipe

    from lumina_core.config.typed import typed_recipe
    from lumina_core.finetune.settings import lora_settings

    recipe = OmegaConf.to_container(tiny_recipe(tmp_path / "r"), resolve=True)
    recipe["train"]["lora"] = {"rank": 4, "alpha": 4.0}
    settings = lora_settings(typed_recipe(recipe))
    assert all(p in settings.targets for p in CONDITIONING_TARGETS)
    recipe["train"]["lora"]["adapt_conditioning"] = False
    assert not any(p in lora_settings(typed_recipe(recipe)).targets for p in CONDITIONING_TARGETS)

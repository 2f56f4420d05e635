"""benchmarks/finetune_memory.py --preset lumina2: the unified trunk's activation count on meta tensors."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_memory import unified_activation_bytes  # noqa: E402

from lumina_core.model import LuminaModel, NextDiTConfig  # noqa: E402
from lumina_core.plugin import AdapterSpec  # noqa: E402


def tiny(n_layers: int):
    cfg = NextDiTConfig(family="unified", dim=64, n_layers=n_layers, n_heads=4, n_kv_heads=2, context_dim=32,
                        n_refiner_layers=1, multiple_of=16)  # fmt: skip
    spec = AdapterSpec(in_dim=16, out_dim=16, num_axes=2, axis_split=(1, 1), rope_layout="blocked")
    with torch.device("meta"):
        return LuminaModel(cfg, {"t2i": spec}, {"t2i": 32}).to(torch.bfloat16)


def test_each_stack_is_counted_on_its_own_sequence_times_its_depth():
    grid, caption = 4, 8  # 16 image tokens
    total2, largest, lengths = unified_activation_bytes(tiny(2), grid, 1, caption)
    total3, largest3, _ = unified_activation_bytes(tiny(3), grid, 1, caption)
    assert lengths == [
        caption,
        16,
        24,
        24,
    ]  # context refiner, noise refiner, the joint layers on caption + image
    assert largest == largest3 > 0  # the largest block is a joint layer: its sequence is the longest
    assert total3 - total2 == largest  # one more joint layer adds one joint block's activations
    _, largest_b2, _ = unified_activation_bytes(tiny(2), grid, 2, caption)
    assert largest_b2 == 2 * largest  # activations are per sample


def test_the_next_dit_count_runs_on_meta_tensors_and_grows_with_depth():
    """The ``2B`` path (a real forward of the Next-DiT trunk on meta tensors): it broke once when the mask test
    moved into the forward context and read a meta tensor's values."""
    from finetune_memory import saved_activation_bytes

    def next_dit(n_layers: int):
        cfg = NextDiTConfig(dim=64, n_layers=n_layers, n_heads=4, n_kv_heads=2, context_dim=2048, multiple_of=16)
        spec = AdapterSpec(in_dim=16, out_dim=32, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
        with torch.device("meta"):
            return LuminaModel(cfg, {"t2i": spec}, {"t2i": 2048}).to(torch.bfloat16)

    total2, block2 = saved_activation_bytes(next_dit(2), 4, 1, 8)
    total3, block3 = saved_activation_bytes(next_dit(3), 4, 1, 8)
    # one more block adds at most the largest block's count (the first block also holds what all blocks share)
    assert block2 == block3 > 0 and 0 < total3 - total2 <= block3


def test_the_meta_shim_is_undone_after_the_count():
    """The count answers the masks' all-valid test for meta tensors only while it runs; the model modules get
    their own function back (it keeps torch.compile's guard)."""
    from finetune_memory import saved_activation_bytes

    import lumina_core.model.context as context_module

    before = context_module.all_true
    cfg = NextDiTConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, context_dim=2048, multiple_of=16)
    spec = AdapterSpec(in_dim=16, out_dim=32, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
    with torch.device("meta"):
        model = LuminaModel(cfg, {"t2i": spec}, {"t2i": 2048}).to(torch.bfloat16)
    saved_activation_bytes(model, 4, 1, 8)
    assert context_module.all_true is before

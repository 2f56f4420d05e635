"""The trunk's blocks read one :class:`ForwardContext` per attention stream: a layer's context is the shared one
unless that layer drops context; both families' blocks are the one shared :class:`Block` with state-dict names
unchanged (checkpoints load); and a third trunk family is one new class plus its registration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model.attention import Attention
from lumina_core.model.block import Block, NextDiTBlock
from lumina_core.model.context import ForwardContext, key_mask
from lumina_core.model.context_drop import ContextDrop, drop_plan
from lumina_core.model.embedders import TimestepEmbedder
from lumina_core.model.family import Trunk
from lumina_core.model.unified import UnifiedBlock
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import TRUNK_FAMILIES, temporary_registrations
from lumina_core.tokens import TokenBatch

SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))


def _grid(b: int = 2, h: int = 3, w: int = 4, seed: int = 1) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    pos = torch.stack(torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij"), -1).reshape(-1, 2)
    n = h * w
    return TokenBatch(
        torch.randn(b, n, SPEC.in_dim, generator=g),
        pos[None].expand(b, -1, -1).clone(),
        torch.ones(b, n, dtype=torch.bool),
        [(h, w)] * b,
    )


def test_a_layer_reads_the_shared_context_unless_it_drops_context():
    batch = _grid()
    ctx = ForwardContext(key_mask(batch.mask), c=torch.zeros(2, 4))
    assert ctx.key_mask is None  # nothing padded: no mask at all
    assert ctx.for_layer(0) is ctx and ctx.for_layer(5) is ctx
    t = torch.tensor([0.1, 0.9])  # layers 0..3; schedule "layers": at t=0.1 all drop, at t=0.9 only layer 0
    plan = drop_plan(ContextDrop(factor=2), batch.positions, batch.mask, t, 4, lambda p: (None, None))
    ctx = ForwardContext(c=torch.zeros(2, 4), drop=plan)
    layers = [ctx.for_layer(i) for i in range(4)]
    assert all(lc is not ctx and lc.layer_drop is not None and lc.c is ctx.c for lc in layers)
    assert layers[0].layer_drop.rows == "all" and layers[3].layer_drop.rows.tolist() == [0]
    assert ForwardContext(drop=plan).for_layer(7).layer_drop is None  # past the plan: no drop


def test_both_families_build_their_blocks_from_the_one_shared_block_with_unchanged_names():
    cfg = NextDiTConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, context_dim=12, n_refiner_layers=1)
    nd, un, ref = NextDiTBlock(cfg), UnifiedBlock(cfg), UnifiedBlock(cfg, modulated=False)
    assert all(isinstance(b, Block) and isinstance(b.attention, Attention) for b in (nd, un, ref))
    shared = [
        "attention.wqkv.weight", "attention.wo.weight", "feed_forward.w13.weight", "feed_forward.w2.weight",
        "attention_norm1.weight", "attention_norm2.weight", "ffn_norm1.weight", "ffn_norm2.weight",
    ]
    cross = ["attention.gate", "attention.q_norm.weight", "attention.q_norm.bias", "attention.k_norm.weight",
             "attention.k_norm.bias", "attention.wkv_y.weight", "attention.ky_norm.weight", "attention.ky_norm.bias",
             "attention_y_norm.weight"]
    modulation = ["adaLN_modulation.1.weight", "adaLN_modulation.1.bias"]
    per_head = ["attention.q_norm.weight", "attention.k_norm.weight"]
    assert sorted(nd.state_dict()) == sorted(shared + cross + modulation)
    assert sorted(un.state_dict()) == sorted(shared + per_head + modulation)
    assert sorted(ref.state_dict()) == sorted(shared + per_head)
    assert list(nd.state_dict())[:2] == ["attention.gate", "attention.wqkv.weight"]  # registration order kept


class _PlainTrunk(Trunk):
    """A third family for the test: time-modulated self-attention blocks over the task's tokens, no caption."""

    def __init__(self, cfg: NextDiTConfig) -> None:
        super().__init__(cfg)
        self.t_embedder = TimestepEmbedder(cfg.cond_dim, cfg.t_freq_dim)
        self.layers = nn.ModuleList(
            Block(
                cfg.dim,
                Attention(cfg.dim, cfg.n_heads, cfg.n_kv_heads, None),
                cfg.ffn_hidden,
                cfg.norm_eps,
                nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, 4 * cfg.dim)),
            )
            for _ in range(cfg.n_layers)
        )

    def task_rope(self, spec):
        from lumina_core.model.adapter import spec_rope

        return spec_rope(spec, self.config.head_dim)

    def encode_tokens(self, x, mask, positions, t, y, y_mask, rope, scaling, context_drop=None, c_shift=None):
        c = self.t_embedder(t)
        cos, sin, prop = rope(positions, mask, t, scaling)
        return self.run_blocks(self.layers, x, ForwardContext(key_mask(mask), cos, sin, prop, c)), c


def test_a_third_family_is_one_class_and_its_registration():
    with temporary_registrations():
        TRUNK_FAMILIES.register("plain_test")(_PlainTrunk)
        torch.manual_seed(0)
        cfg = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, family="plain_test")
        model = LuminaModel(cfg, {"img": SPEC})
        with torch.no_grad():  # away from the zero initialisation, so every block does something
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        batch = _grid(b=2)
        batch.mask[1, 8:] = False  # sample 1 padded: its real tokens must not see the padding
        t = torch.tensor([0.3, 0.6])
        out = model(batch, t)
        out.square().mean().backward()
        assert isinstance(model.trunk, _PlainTrunk)
        assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("trunk.layers."))
        alone = TokenBatch(batch.tokens[1:, :8], batch.positions[1:, :8], batch.mask[1:, :8], [(3, 4)])
        with torch.no_grad():
            torch.testing.assert_close(model(alone, t[1:])[0], out[1, :8].detach(), atol=1e-5, rtol=1e-4)
    assert "plain_test" not in TRUNK_FAMILIES.names()


def test_task_modulation_names_a_family_whose_encode_tokens_does_not_take_it():
    """A family written before train.composition task_modulation still runs (the model passes the argument only
    when a task has its own modulation); asking for the method on it is refused with a message."""
    from lumina_core.training.composition.task_modulation import TaskModulation

    with temporary_registrations():
        TRUNK_FAMILIES.register("plain_test")(_PlainTrunk)
        model = LuminaModel(NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, family="plain_test"), {"img": SPEC})
        with pytest.raises(ValueError, match="task_modulation needs a trunk family whose encode_tokens takes task_parts.*plain_test"):
            TaskModulation().prepare_model(model, ["img"])


def test_task_block_parts_hand_each_block_its_own_and_nothing_elsewhere():
    """TaskBlockParts: what an adapter holds, found by stream name and block index; a stream or kind the task
    does not own is None, and an adapter with no parts gives None (the model then passes no keyword)."""
    from torch import nn

    from lumina_core.model.task_parts import TaskBlockParts

    mods = [nn.Linear(2, 8), nn.Linear(2, 8)]
    loras = [{"wqkv": nn.Identity()}, {"wo": nn.Identity()}, {"w2": nn.Identity()}]
    adapter = nn.Module()
    assert TaskBlockParts.of_adapter(adapter) is None
    adapter.task_modulation = {"noise_refiner": mods}
    adapter.task_lora = {"layers": loras}
    parts = TaskBlockParts.of_adapter(adapter)
    assert parts.stream("noise_refiner").layer(1) == (mods[1], None)
    assert parts.stream("layers").layer(2) == (None, loras[2])
    assert parts.stream("context_refiner").layer(0) == (None, None)
    assert parts.stream(None).layer(0) == (None, None)
    only_lora = nn.Module()
    only_lora.task_lora = {"layers": loras}
    assert TaskBlockParts.of_adapter(only_lora).modulation is None

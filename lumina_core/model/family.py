"""Trunk families: the shared network between the tasks' adapters, chosen by ``model.family`` in a recipe.

    h, c = trunk.encode_tokens(x, batch, t, y, y_mask, rope, scaling, context_drop)    # (B, L, dim), (B, C)
    out  = adapter.final_layer(h, c)

A family is a :class:`Trunk` subclass registered in :data:`lumina_core.registry.TRUNK_FAMILIES`; it is built
from the one :class:`~lumina_core.model.config.NextDiTConfig` and decides three things:

* the modules of the trunk (blocks, conditioning embedders);
* :meth:`Trunk.task_rope`: the RoPE tables of a task (the task's axes, plus any axes the family adds, e.g. the
  unified family's caption axis);
* :meth:`Trunk.encode_tokens`: how the embedded tokens, the flow time and the condition become hidden tokens
  and the conditioning vector ``c`` the task's final layer reads: it builds each attention stream's
  :class:`~lumina_core.model.context.ForwardContext` once (rotations, masks, modulation input, caption
  features) and runs the stream's blocks with :meth:`Trunk.run_blocks`.

The blocks themselves, their attention, SwiGLU, norms and RoPE are shared (:class:`lumina_core.model.block.Block`,
:mod:`.attention`, :mod:`.rope`): a family picks their options (cross-attention or not, q/k norm kind,
modulated or not) and arranges the streams.

Built in: ``next_dit`` (Lumina-Next: gated cross-attention to the caption, :mod:`.nextdit`) and ``unified``
(Lumina-Image 2.0 / Z-Image: caption and noisy tokens in one self-attention sequence, :mod:`.unified`). A
third family is one new module with a ``@TRUNK_FAMILIES.register("name")`` class, plus its module in the
registry's providers (or a plugin's entry point).
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from lumina_core.model.config import NextDiTConfig
from lumina_core.model.context import ForwardContext
from lumina_core.model.rope import NDRope, RopeScaling
from lumina_core.model.task_parts import TaskBlockParts
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import TRUNK_FAMILIES, RegistryError


class TrunkBlock(nn.Module):
    """Marker base of every family's block: the unit of FSDP sharding and of activation checkpointing, called
    as ``block(x, ctx)`` with x (B, L, dim) and the stream's :class:`~lumina_core.model.context.ForwardContext`.
    A block's ``adaLN_modulation`` (absent or None for an unmodulated block) is zero-initialised, so it starts as
    the identity."""


class Trunk(nn.Module, abc.ABC):
    """Base class of a trunk family (see the module docstring)."""

    #: the blocks, in order (context drop, LoRA targets and sharding address them as ``trunk.layers.N``)
    layers: nn.ModuleList
    grad_checkpointing: bool = False

    def __init__(self, cfg: NextDiTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.grad_checkpointing = cfg.grad_checkpointing

    def run_blocks(
        self, blocks: nn.ModuleList, x: Tensor, ctx: ForwardContext, task_parts: TaskBlockParts | None = None
    ) -> Tensor:
        """``x`` through ``blocks`` in order, block ``i`` reading ``ctx.for_layer(i, modulation_i, lora_i)``;
        each block's activations recomputed in the backward pass when ``grad_checkpointing`` is on and
        gradients are being recorded. ``task_parts``: the running task's own parts of the blocks
        (:class:`~lumina_core.model.task_parts.TaskBlockParts`: ``train.composition: [task_modulation]``,
        ``[task_lora]``), found by the stream's attribute name on the trunk (``layers``, ``noise_refiner``...);
        a stream it does not name runs with the blocks' own weights alone."""
        recompute = self.grad_checkpointing and torch.is_grad_enabled()
        own = None if task_parts is None else task_parts.stream(self.stream_name(blocks))
        for i, block in enumerate(blocks):
            layer_ctx = ctx.for_layer(i) if own is None else ctx.for_layer(i, *own.layer(i))
            x = checkpoint(block, x, layer_ctx, use_reentrant=False) if recompute else block(x, layer_ctx)
        return x

    def stream_name(self, blocks: nn.ModuleList) -> str | None:
        """The attribute name of the block list ``blocks`` on this trunk (``layers``, ``noise_refiner``...)."""
        return next((n for n, m in self.named_children() if m is blocks), None)

    def modulated_streams(self) -> dict[str, list[int]]:
        """``{stream name: the modulated blocks' output widths}`` for every block list whose blocks have an
        ``adaLN_modulation`` (what a per-task modulation has to match)."""
        return {
            name: [modulation_linear(b).out_features for b in blocks]
            for name, blocks in block_streams(self).items()
            if all(getattr(b, "adaLN_modulation", None) is not None for b in blocks)
        }

    @abc.abstractmethod
    def task_rope(self, spec: AdapterSpec) -> NDRope:
        """The RoPE tables a task with this spec uses in this trunk."""

    @abc.abstractmethod
    def encode_tokens(
        self,
        x: Tensor,
        mask: Tensor,
        positions: Tensor,
        t: Tensor,
        y: Tensor | None,
        y_mask: Tensor | None,
        rope: NDRope,
        scaling: RopeScaling | None,
        context_drop: object | None = None,
        c_shift: Tensor | None = None,
        task_parts: TaskBlockParts | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Hidden tokens (B, L, dim) and conditioning vector (B, cond_dim) of embedded tokens ``x`` (B, L, dim)
        with ``mask`` (B, L) and ``positions`` (B, L, A) at flow time ``t`` (B,), under condition features
        ``y`` (B, Lc, context_dim) / ``y_mask`` (B, Lc) or None; ``c_shift`` (cond_dim,) is added to the
        conditioning vector (a task embedding, ``train.composition: [task_embedding]``); ``task_parts`` (the
        task's own modulation and low-rank updates of the blocks, ``[task_modulation]``, ``[task_lora]``) goes
        to :meth:`run_blocks`. A family may leave ``task_parts`` out of its signature: the methods that need it
        then refuse that family, and the model does not pass it when the task has none."""


def block_streams(trunk: nn.Module) -> dict[str, nn.ModuleList]:
    """``{attribute name: block list}`` of every list of :class:`TrunkBlock` on ``trunk`` (``layers``,
    ``noise_refiner``, ``context_refiner``...)."""
    return {
        name: child
        for name, child in trunk.named_children()
        if isinstance(child, nn.ModuleList) and child and all(isinstance(b, TrunkBlock) for b in child)
    }


def modulation_linear(block: nn.Module) -> nn.Linear:
    """The linear layer of a modulated block's ``adaLN_modulation`` (``SiLU`` then ``Linear(cond_dim, 4 dim)``)."""
    layers = [m for m in block.adaLN_modulation.modules() if isinstance(m, nn.Linear)]
    if len(layers) != 1:
        raise TypeError(f"expected one Linear in the block's adaLN_modulation; found {len(layers)}")
    return layers[0]


def trunk_class(family: str) -> type[Trunk]:
    """The registered trunk class of ``family``; ValueError naming the known families otherwise."""
    try:
        return TRUNK_FAMILIES.get(family)
    except RegistryError as exc:
        raise ValueError(f"model.family: {exc.args[0] if exc.args else exc}") from None


def build_trunk(cfg: NextDiTConfig) -> Trunk:
    """A freshly built trunk of ``cfg.family`` (weights initialised by :meth:`LuminaModel.initialize_weights`)."""
    return trunk_class(cfg.family)(cfg)

"""The forward context: what every block of one attention stream reads, built once per forward pass.

    ctx = ForwardContext(key_mask, cos, sin, prop, c, y, y_mask, drop)     # once, by the trunk family
    for i, block in enumerate(blocks):
        x = block(x, ctx.for_layer(i, mod[i], lora[i]))  # the same object unless layer i drops or has a
                                                     # task's own modulation or low-rank updates
                                                     # (train.composition: [task_modulation], [task_lora])

A family's ``encode_tokens`` computes the positions' rotations (``cos``, ``sin``), the key masks, the
conditioning vector ``c`` that the blocks' modulation reads and the caption features once, and hands the blocks
one object instead of a list of positional tensors. The blocks, the attention and the FFN are the same modules
in every family (:mod:`.block`, :mod:`.attention`); a family differs only in which streams it builds and in
what each stream's context holds (the unified family builds one per refiner and one for the joint layers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from lumina_core.model.context_drop import DropPlan, LayerDrop
from lumina_core.model.masks import all_true


@dataclass(frozen=True)
class ForwardContext:
    """What the blocks of one attention stream read; every field may be None when the stream has none.

    Attributes:
        key_mask: (B, 1, 1, L) bool, False for keys to ignore (padding); None when every token is real.
        cos, sin: (B, L, head_dim / 2) RoPE rotation tables of the tokens (fp32); None without RoPE.
        prop: (B,) proportional-attention factor multiplying the queries, or None.
        c: (B, cond_dim) conditioning vector of the modulated blocks (None for an unmodulated stream).
        y: (B, Lc, context_dim) caption features for cross-attention (``next_dit``), or None.
        y_mask: (B, 1, 1, Lc) bool cross-attention mask, or None when every caption token is real.
        drop: the context-drop plan of the whole pass (:mod:`.context_drop`), or None.
        layer_drop: the current layer's share of ``drop`` (set by :meth:`for_layer`), or None.
        modulation: the current layer's task modulation (set by :meth:`for_layer`): a module mapping ``c`` to
            ``4 dim`` that the block adds to its own ``adaLN_modulation(c)``, or None.
        lora: the current layer's task low-rank updates (set by :meth:`for_layer`): a mapping from the block's
            projection names (``wqkv``, ``wo``, ``w13``, ``w2``) to modules whose output the block adds to the
            projection's own, or None.
    """

    key_mask: Tensor | None = None
    cos: Tensor | None = None
    sin: Tensor | None = None
    prop: Tensor | None = None
    c: Tensor | None = None
    y: Tensor | None = None
    y_mask: Tensor | None = None
    drop: DropPlan | None = None
    layer_drop: LayerDrop | None = None
    modulation: nn.Module | None = None
    lora: Mapping[str, nn.Module] | None = None

    def for_layer(
        self, index: int, modulation: nn.Module | None = None, lora: Mapping[str, nn.Module] | None = None
    ) -> ForwardContext:
        """The context block ``index`` reads: this one, or a copy carrying that layer's context drop and the
        task's own ``modulation`` and ``lora`` updates of that layer (None: none)."""
        layer = None if self.drop is None else self.drop.for_layer(index)
        if layer is None and modulation is None and lora is None:
            return self
        return dataclasses.replace(self, layer_drop=layer, modulation=modulation, lora=lora)


def key_mask(mask: Tensor) -> Tensor | None:
    """(B, 1, 1, L) attention key mask of a (B, L) token mask; None when nothing is masked."""
    return None if all_true(mask) else mask[:, None, None, :]

"""``plain``: the step's loss is the sum of the weighted task losses, nothing else (the baseline)."""

from __future__ import annotations

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition


@COMPOSITIONS.register("plain")
class Plain(Composition):
    """loss = sum_k loss_weight_k L_k; draws with the recipe's draw_weight; the model as built."""

    registered_name = "plain"

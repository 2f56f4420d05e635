"""``temperature``: draw weights from the tasks' data sizes, flattened by a temperature (the sampling of
multilingual translation: Arivazhagan et al. 2019).

    p_k  proportional to  n_k^(1/T)        (n_k: the task's training set size)

T = 1 draws in proportion to the data; T -> infinity draws every task equally often. Tasks with
``draw_weight: 0`` stay undrawn; the other recipe draw weights are replaced. Needs ``train.mixing: weighted``.
"""

from __future__ import annotations

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition


@COMPOSITIONS.register("temperature")
class TemperatureDraws(Composition):
    """Draw task k with probability proportional to ``size_k ** (1 / T)``."""

    registered_name = "temperature"
    mixing = ("weighted",)
    mixing_reason = "it sets how often each task is drawn, and under 'all' every task runs every step"

    def __init__(self, T: float = 2.0) -> None:  # noqa: N803 - the temperature's usual name
        if not float(T) > 0:
            raise ValueError(f"temperature: T must be positive; got {T}")
        self.T = float(T)

    def draw_weights(self, weights: dict[str, float], sizes: dict[str, int | None]) -> dict[str, float]:
        unknown = [k for k, n in sizes.items() if n is None or n <= 0]
        if unknown:
            raise ValueError(
                f"train.composition temperature draws by data size, but the training data of task(s) "
                f"{unknown} has no size (a stream?); set their draw_weight yourself and drop 'temperature'"
            )
        return {k: (float(sizes[k]) ** (1.0 / self.T) if w > 0 else 0.0) for k, w in weights.items()}

"""The ``condition`` parameter of the image datasets: which kind of condition their items carry.

``shapes``, ``digits``, ``image_folder``, ``image_shards`` and ``image_stream`` let the recipe choose what an
item's ``condition`` is (a caption, a class id, or nothing) with one constructor parameter, ``condition``.
The dataset contract (:class:`lumina_core.data.LuminaDataset`) asks for that choice as ``condition_kind``, so a
recipe pairing the dataset with a conditioner of another kind is refused before training:
:class:`ConditionParameter` answers it from the parameter, and :func:`check_condition` refuses a kind the
dataset cannot give.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConditionParameter:
    """Mixin (list it before the dataset base): ``condition_kind`` is the dataset's ``condition`` attribute."""

    condition: str

    @property
    def condition_kind(self) -> str:
        """``text``, ``class`` or ``none``: what the items' conditions are (the ``condition`` parameter)."""
        return self.condition


def check_condition(condition: str, allowed: Sequence[str]) -> str:
    """``condition`` when it is one of ``allowed``, else a ValueError naming both."""
    if condition not in allowed:
        names = [repr(a) for a in allowed]
        choices = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"condition must be {choices}; got {condition!r}")
    return condition

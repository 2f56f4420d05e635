"""Held-out data for ``evaluate``: the task's val split, or one val split per value of a swept dataset parameter.

A task's ``eval.sweep`` maps one dataset parameter to a list of values, e.g. ``{size: [16, 24, 32, 48, 64]}``;
evaluation then builds the val split once per value (``val_params[param] = value``) and reports every metric
as ``<task>/<metric>@<param>=<value>`` - accuracy per resolution for a classifier, scores per size for a
generator. No sweep: one val split, metrics ``<task>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def eval_splits(task: Any) -> Iterator[tuple[str, Any]]:
    """``(suffix, dataset)`` pairs: ``("", val)`` or ``("@size=16", val at size 16)``, ...."""
    from omegaconf import OmegaConf

    from lumina_core.training.build import build_dataset, plain

    sweep = plain(task.eval.sweep) or {}
    if not sweep:
        yield "", build_dataset(task, "val")
        return
    if len(sweep) != 1:
        raise ValueError(
            f"task {task.name!r}: eval.sweep takes one dataset parameter and its values, e.g. "
            f"{{size: [16, 32, 64]}}; got {sweep}"
        )
    ((param, values),) = sweep.items()
    if not isinstance(values, list) or not values:
        raise ValueError(f"task {task.name!r}: eval.sweep.{param} must be a non-empty list; got {values!r}")
    for value in values:
        variant = OmegaConf.create(OmegaConf.to_container(task, resolve=True))
        variant.data.val_params[param] = value
        yield f"@{param}={value}", build_dataset(variant, "val")

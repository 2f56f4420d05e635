"""Data plumbing shared by every modality: item collation, corrupt-sample accounting, shard packing.

Every dataset yields items ``{"sample": Tensor, "condition": str | int | None, "meta": dict}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Collate dataset items into lists (samples may differ in size; the plugin tokenizes them later)."""
    items = [it for it in items if it is not None]
    return {
        "samples": [it["sample"] for it in items],
        "conditions": [it.get("condition") for it in items],
        "meta": [it.get("meta", {}) for it in items],
    }


from lumina_core.data.checkers import Checker, Scores  # noqa: E402
from lumina_core.data.contract import (  # noqa: E402  (the contract, after the collation helper)
    CONDITION_KINDS,
    SPLITS,
    ConditionParameter,
    DatasetContract,
    LuminaDataset,
    LuminaStream,
    build_dataset,
    check_condition,
    check_condition_kinds,
    condition_kind_of,
)

__all__ = [
    "CONDITION_KINDS",
    "SPLITS",
    "Checker",
    "ConditionParameter",
    "DatasetContract",
    "LuminaDataset",
    "LuminaStream",
    "Scores",
    "build_dataset",
    "check_condition",
    "check_condition_kinds",
    "collate_items",
    "condition_kind_of",
]

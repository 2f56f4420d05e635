"""The training API: ``train``, ``sample``, ``evaluate`` and ``load_run``, in one import.

    from lumina_core.training.api import train, sample, evaluate, load_run
    run_dir = train(cfg)                      # cfg: a recipe (OmegaConf DictConfig following config/schema.py)
    run_dir = train(cfg, resume="last")       # continue exactly where the last checkpoint left off
    paths   = sample(cfg, "last", ["a red circle"], num=4, out_dir="out/")
    metrics = evaluate(cfg, None)             # every task's Task.evaluate on held-out items, metrics.json

The work lives in three modules by what it does; this one re-exports their public names, so scripts written
against it keep working:

- :mod:`.run`: training a run (``train``; the run folder's lock, resume and recipe changes, preemption, lost ranks);
- :mod:`.inference`: ``sample``, ``evaluate``, ``write_scored_samples``;
- :mod:`.weights`: ``load_run``, ``load_weights``, ``prepare_weights`` (``train.init_from``, LoRA), ``describe_mismatch``.
"""

from __future__ import annotations

from lumina_core.training.build import RunParts, build_run, resolve_device
from lumina_core.training.inference import evaluate, sample, write_scored_samples
from lumina_core.training.ranks import launch_rank
from lumina_core.training.run import (
    PREVIEW_ITEMS,
    RecipeChangedError,
    RunExistsError,
    check_recipe_changes,
    rank_lost_text,
    train,
)
from lumina_core.training.weights import describe_mismatch, load_run, load_weights, prepare_weights

__all__ = [
    "PREVIEW_ITEMS",
    "RecipeChangedError",
    "RunExistsError",
    "RunParts",
    "build_run",
    "check_recipe_changes",
    "describe_mismatch",
    "evaluate",
    "launch_rank",
    "load_run",
    "load_weights",
    "prepare_weights",
    "rank_lost_text",
    "resolve_device",
    "sample",
    "train",
    "write_scored_samples",
]

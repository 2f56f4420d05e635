"""The trained shapes model that the context-drop, extrapolation and image-sampling benchmarks share.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/lumina train recipes/image/shapes_tiny.yaml run.name=issue18_shapes train.threads=1

trains it once (about 10 minutes on 2 quiet cores; the run folder ``runs/issue18_shapes`` is gitignored); the
benchmarks load the EMA weights of its step-1000 checkpoint (:data:`CHECKPOINT`: the run that produced the
figures in docs/benchmarks.md was stopped at step 1600 of 2000 because the shared machine ran it at 0.15
steps/s) with :func:`load_shapes`, and grade samples with :func:`grade`: the shapes
checker's adherence (shape, colour and position all as captioned; chance 1/60) and the FID-style score of
``lumina_modalities.image.fid`` against real renders of the same captions at the same size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "image" / "shapes_tiny.yaml"
RUN_NAME = "issue18_shapes"
CHECKPOINT = "step_0001000"
TRAIN_COMMAND = (
    "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/lumina train recipes/image/shapes_tiny.yaml "
    f"run.name={RUN_NAME} train.threads=1"
)


def load_shapes(run_name: str = RUN_NAME) -> tuple[Any, Any, Any, Any]:
    """``(cfg, model, plugin, conditioner)`` of the trained run (EMA weights, eval mode, CPU)."""
    from lumina_core.config import load_recipe
    from lumina_core.training.api import load_run

    run_dir = ROOT / "runs" / run_name
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(
            f"no trained shapes model at {run_dir}: train it once with\n    {TRAIN_COMMAND}"
        )
    os.environ.setdefault("LUMINA_CACHE_DIR", str(ROOT / "runs" / ".cache"))
    cfg = load_recipe(RECIPE, [f"run.name={run_name}", f"run.output_dir={run_dir}"])
    from media_models import unpack_run

    model, plugin, conditioner, _ = unpack_run(
        load_run(cfg, run_dir / "checkpoints" / CHECKPOINT, device="cpu"), cfg.tasks[0].name
    )
    return cfg, model, plugin, conditioner


def held_out(size: int, n: int, seed: int = 0) -> Any:
    """The held-out shapes dataset rendered at ``size`` pixels (the captions do not depend on the size)."""
    from lumina_core.registry import DATASETS

    return DATASETS.build(
        {"name": "shapes", "params": {"size": size, "length": n, "condition": "text", "seed": seed}}, split="val"
    )


def generate_for(
    model: Any,
    plugin: Any,
    enc: Any,
    items: Sequence[dict],
    shape: tuple[int, int, int],
    batch_size: int = 32,
    seed: int = 0,
    **sampling: Any,
) -> tuple[list[torch.Tensor], float]:
    """Samples for the items' captions at ``shape`` and the wall time spent generating them."""
    from lumina_core.sampling import generate

    out: list[torch.Tensor] = []
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        out += generate(
            model, plugin, enc, "shapes", [it["condition"] for it in chunk], shapes=[shape] * len(chunk),
            seed=seed + i, **sampling,
        )  # fmt: skip
    return out, time.perf_counter() - start


def grade(plugin: Any, samples: Sequence[torch.Tensor], items: Sequence[dict], dataset: Any) -> dict[str, float]:
    """Adherence (the shapes checker) and ``fid`` (FID-style, in-project features) of samples vs items."""
    return {k: float(v) for k, v in plugin.evaluate(list(samples), list(items), dataset).items()}

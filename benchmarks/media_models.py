"""The trained audio (tones) and video (moving shapes) models that the extrapolation and sampling benchmarks share.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/lumina train recipes/audio/tones_tiny.yaml run.name=issue18_tones train.threads=1
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/lumina train plugins/lumina-video/recipes/moving_shapes_tiny.yaml \
        run.name=issue18_video train.threads=1

train them once (about 6 and 3 minutes on 2 quiet cores; ``runs/`` is gitignored). :func:`load` returns a
:class:`Loaded` run (EMA weights of the last checkpoint, eval mode, CPU); :func:`held_out` builds the recipe's
held-out split with some of its dataset parameters changed (a longer ``clip_seconds`` for audio, more
``frames`` for video: the captions do not depend on them); :func:`generate_tokens` samples and returns both the
final model-space tokens (for errors against a reference solution) and the decoded samples (for the checker).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

#: name -> (recipe, run name, dataset parameter that sets the length, its trained value)
RUNS: dict[str, tuple[str, str, str, float]] = {
    "tones": ("recipes/audio/tones_tiny.yaml", "issue18_tones", "clip_seconds", 1.0),
    "video": ("plugins/lumina-video/recipes/moving_shapes_tiny.yaml", "issue18_video", "frames", 8),
}


def train_command(name: str) -> str:
    recipe, run, _, _ = RUNS[name]
    return f"OMP_NUM_THREADS=1 nice -n 10 .venv/bin/lumina train {recipe} run.name={run} train.threads=1"


@dataclass
class Loaded:
    """One trained run: its recipe, model, the task's plugin and conditioner."""

    name: str
    cfg: Any
    model: Any
    plugin: Any
    enc: Any
    built: Any = None  # the run's built Task where load_run returns one (lumina_core.training.task)

    @property
    def task(self) -> Any:
        return self.cfg.tasks[0]

    def sampling(self) -> dict[str, Any]:
        """The recipe's sampling settings in recipe form (solver, grid, steps, cfg_scale, rope_scaling, ...), which
        ``generate`` takes as keyword overrides."""
        if self.built is not None:
            return dict(self.built.sampling.spec)
        from lumina_core.training.build import sampling_kwargs  # the API before the Task object

        return sampling_kwargs(self.task)


def load(name: str, checkpoint: str = "last") -> Loaded:
    """The trained run ``name`` (a key of :data:`RUNS`); FileNotFoundError with the training command if absent."""
    from lumina_core.config import load_recipe
    from lumina_core.training.api import load_run

    if name not in RUNS:
        raise ValueError(f"unknown benchmark model {name!r}; known: {', '.join(RUNS)}")
    recipe, run, _, _ = RUNS[name]
    run_dir = ROOT / "runs" / run
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(f"no trained {name} model at {run_dir}: train it once with\n    {train_command(name)}")
    os.environ.setdefault("LUMINA_CACHE_DIR", str(ROOT / "runs" / ".cache"))
    cfg = load_recipe(ROOT / recipe, [f"run.name={run}", f"run.output_dir={run_dir}"])
    ck = run_dir / "checkpoints" / checkpoint if checkpoint != "last" else None
    return Loaded(name, cfg, *unpack_run(load_run(cfg, ck, device="cpu"), cfg.tasks[0].name))


def unpack_run(parts: Any, task: str) -> tuple[Any, Any, Any, Any]:
    """``(model, plugin, conditioner, built task or None)`` of ``load_run``'s result, whichever form it has:
    a RunParts with built tasks, or the earlier ``(model, {task: plugin}, {task: conditioner})``."""
    if isinstance(parts, tuple):
        model, plugins, conditioners = parts
        return model, plugins[task], conditioners[task], None
    built = parts.task(task)
    return parts.model, built.plugin, built.conditioner, built


def held_out(run: Loaded, **val_params: Any) -> Any:
    """The recipe's held-out (``val``) dataset with ``val_params`` merged over the recipe's."""
    if run.built is not None:
        return run.built.dataset("val", **val_params)
    from omegaconf import OmegaConf

    from lumina_core.training.build import build_dataset

    variant = OmegaConf.create(OmegaConf.to_container(run.task, resolve=True))
    for k, v in val_params.items():
        variant.data.val_params[k] = v
    return build_dataset(variant, "val")


class _TokenTap:
    """The plugin as :func:`lumina_core.sampling.generate` sees it, except that ``detokenize`` keeps the
    final token batch (the ODE's end state, model space) and hands it back undecoded; the benchmark decodes
    it with the real plugin afterwards. Every other attribute is the plugin's own."""

    def __init__(self, plugin: Any) -> None:
        self._plugin = plugin
        self.batch: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plugin, name)

    def detokenize(self, batch: Any) -> list[torch.Tensor]:
        self.batch = batch
        return [batch.tokens[i, :n].clone() for i, n in enumerate(batch.lengths.tolist())]


def generate_tokens(
    run: Loaded,
    items: Sequence[dict],
    batch_size: int = 32,
    seed: int = 0,
    decode: bool = True,
    **sampling: Any,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(tokens, samples)`` for the items' conditions at the items' shapes: the final model-space tokens of
    each sample (real tokens only) and, with ``decode``, the plugin's decoded samples (waveforms, clips).
    The noise of chunk ``i`` is seeded ``seed + i`` as in ``lumina eval``."""
    from lumina_core.sampling import generate

    tokens: list[torch.Tensor] = []
    samples: list[torch.Tensor] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        tap = _TokenTap(run.plugin)
        out = generate(
            run.model, tap, run.enc, run.task.name, [it["condition"] for it in chunk],
            shapes=[tuple(run.plugin.sample_shape(it["sample"])) for it in chunk], seed=seed + i, **sampling,
        )  # fmt: skip
        tokens += out
        if decode:
            samples += [s.detach().float().cpu() for s in run.plugin.detokenize(tap.batch)]
    return tokens, samples


def grade(run: Loaded, samples: Sequence[torch.Tensor], items: Sequence[dict], dataset: Any) -> dict[str, float]:
    """The plugin's evaluation (the dataset's ground-truth checker; audio adds the FAD-style ``fad``)."""
    return {k: float(v) for k, v in run.plugin.evaluate(list(samples), list(items), dataset).items()}


def rms(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """RMS difference over every value of two lists of equally shaped tensors."""
    num = sum(float((x.double() - y.double()).pow(2).sum()) for x, y in zip(a, b, strict=True))
    return (num / sum(x.numel() for x in a)) ** 0.5

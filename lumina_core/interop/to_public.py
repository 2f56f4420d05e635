"""Write a model of ours in a registered format's public layout (``lumina convert SRC DST --to NAME``).

``SRC`` is either a converted checkpoint (what ``lumina convert --from`` writes) or a training run of such a model,
fine-tuned in full: a run folder (``runs/NAME``), its ``checkpoints`` folder or ``last`` pointer, or one
``step_N`` checkpoint, found as ``lumina sample --ckpt`` finds it. A run's checkpoint holds the EMA of the
weights beside the raw ones; the EMA is written unless ``raw_weights`` (a run without an EMA file gives its raw
weights). A run's trunk config and its task's modality come from the recipe the checkpoint records; the format
builds the public model from them (:meth:`~lumina_core.interop.checkpoint_format.CheckpointFormat.from_run`) and
refuses, in one paragraph, a model it does not hold. A LoRA run holds its adapter, not a model: it is refused,
naming ``lumina lora export`` and ``lumina lora merge``.

    written = export("runs/my_finetune", "tuned.safetensors", dst_format="lumina2", layout="comfyui")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lumina_core.interop.checkpoint_format import (
    CheckpointFormat,
    LoadedCheckpoint,
    RunWeights,
    checkpoint_format,
)
from lumina_core.interop.formats import read_converted

#: the tensor dtypes :func:`export` can write (``lumina convert --to ... --dtype``)
EXPORT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ExportSource:
    """What :func:`export` writes: the model, and for people where its weights come from (``what``)."""

    loaded: LoadedCheckpoint
    what: str


def export_format(dst_format: str, layout: str | None = None) -> tuple[CheckpointFormat, str]:
    """The registered format ``dst_format`` and its layout ``layout`` (None: the format's first), refused when the
    format is read-only or has no such layout (before any weights are read)."""
    fmt = checkpoint_format(dst_format)
    if not fmt.layouts:
        raise ValueError(
            f"checkpoint format {dst_format!r} is read-only (--from only): it has no layout to export to"
        )
    layout = layout or fmt.layouts[0]
    if layout not in fmt.layouts:
        raise ValueError(
            f"checkpoint format {dst_format!r} has no layout {layout!r}; its layouts: {', '.join(fmt.layouts)}"
        )
    return fmt, layout


def read_export_source(src: str | Path, dst_format: str, raw_weights: bool = False) -> ExportSource:
    """The model at ``src`` (a converted checkpoint or a training run, see the module) for format ``dst_format``."""
    from lumina_core.training.checkpoint import is_converted

    src = Path(src)
    if is_converted(src):
        if raw_weights:
            raise ValueError(
                f"--raw-weights chooses between a training run's raw and EMA weights; {src} is a converted "
                "checkpoint, which holds one set of weights: leave the flag out"
            )
        return ExportSource(read_converted(src), f"converted checkpoint {src}")
    run = read_run_weights(src, raw_weights)
    which = {
        "ema": "its EMA weights (--raw-weights for the raw ones)",
        "model": "its raw weights" + ("" if raw_weights else " (the run keeps no EMA)"),
    }[run.which]
    loaded = checkpoint_format(dst_format).from_run(run)
    return ExportSource(loaded, f"training checkpoint {run.checkpoint} (step {run.step}), {which}")


def read_run_weights(src: str | Path, raw_weights: bool = False) -> RunWeights:
    """A training run's checkpoint at ``src`` (run folder, ``checkpoints`` folder, ``last`` pointer or ``step_N``
    folder) with the recipe it records; ValueError / FileNotFoundError in one paragraph for a path that holds no
    run, a LoRA run or a run of several tasks."""
    from lumina_core.config.typed import as_dict, component_spec
    from lumina_core.finetune.runs import is_lora_checkpoint
    from lumina_core.model.config import NextDiTConfig
    from lumina_core.training import checkpoint as ck
    from lumina_core.training.recipe_changes import recorded_recipe

    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(
            f"nothing at {src}: --to reads a converted checkpoint (a folder written by `lumina convert --from`) or a "
            "training run (runs/NAME, runs/NAME/checkpoints/last or runs/NAME/checkpoints/step_N)"
        )
    try:
        path = ck.resolve_checkpoint(src, fallback=False)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{src} is neither a converted checkpoint (config.json and model.safetensors written by `lumina "
            f"convert`) nor a training run's checkpoint: {exc}"
        ) from exc
    recorded = recorded_recipe(path)
    recipe = recorded[0] if recorded else None
    if recipe is None or isinstance(recipe, dict):
        raise ValueError(
            f"the checkpoint {path} records no recipe this version can read (its meta.json, or the run's "
            "config.yaml), so the model its weights belong to is unknown"
        )
    names = [t.name for t in recipe.tasks]

    def lora_run() -> ValueError:
        run = path.parent.parent if path.parent.name == "checkpoints" else Path("<run>")
        adapter, base = run / "lora" / "adapter.safetensors", recipe.train.init_from or "<base>"
        return ValueError(
            f"{path} is a checkpoint of a LoRA run (train.lora): it holds the adapter's factors, not a model. "
            f"Export the adapter itself for ComfyUI, diffusers or kohya: `lumina lora export {adapter} --format "
            "comfyui|diffusers|kohya --out PATH`; or merge it into the converted base it was trained on, `lumina "
            f"lora merge {base} {adapter} --out merged`, and convert that: `lumina convert merged DST --to FORMAT`"
        )

    if recipe.train.lora is not None:  # refused before reading weights (tens of GiB at the releases' size)
        raise lora_run()
    if len(names) != 1:
        raise ValueError(
            f"the run of {path} trains {len(names)} tasks {names} on one trunk; a public layout holds the trunk and "
            "one task's adapter, so only a run of one task converts"
        )
    which = "ema" if not raw_weights and (path / ck.EMA_FILE).is_file() else "model"
    weights = ck.load_weights(path, which)  # one set in memory: a release-size model is tens of GiB in fp32
    if is_lora_checkpoint(weights):  # a LoRA checkpoint whose recorded recipe does not say so
        raise lora_run()
    others = sorted({k.split(".")[0] for k in weights if not k.startswith("model.")})
    if others:
        raise ValueError(
            f"the checkpoint {path} holds trained weights beside the model ({', '.join(others)}: e.g. a class "
            "table); a public layout holds the model alone, its conditions coming from a frozen encoder"
        )
    state = {k[len("model.") :]: v for k, v in weights.items()}
    values = {k: v for k, v in as_dict(recipe.model).items() if v is not None}
    width = state.get("trunk.cap_embedder.0.weight")
    if values.get("context_dim") is None and width is not None:  # the recipe took the text encoder's width
        values["context_dim"] = int(width.shape[0])
    meta = json.loads((path / ck.META_FILE).read_text()) if (path / ck.META_FILE).is_file() else {}
    return RunWeights(
        checkpoint=path,
        step=int(meta.get("step", 0)),
        which=which,
        config=NextDiTConfig.from_dict(values),
        task=names[0],
        modality=component_spec(recipe.tasks[0].modality),
        state=state,
    )


def export(
    src: str | Path | ExportSource,
    dst: str | Path,
    dst_format: str,
    layout: str | None = None,
    dtype: str | None = None,
    raw_weights: bool = False,
) -> list[Path]:
    """Write ``src`` (a converted checkpoint, a training run - see the module - or an :class:`ExportSource`
    already read) at ``dst`` in a public layout of the registered format ``dst_format`` (``layout`` None: the
    format's first); returns the files written. The format decides what ``dst`` is (a file for single-file
    layouts, a folder otherwise). ``dtype`` (``float32`` / ``bfloat16`` / ``float16``) casts the weights first (the
    releases ship bfloat16; our weights are float32, so a bfloat16 release comes back bit for bit); None keeps
    float32. ``raw_weights``: a run's raw weights instead of its EMA."""
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}; got {dtype!r}")
    fmt, layout = export_format(dst_format, layout)
    source = src if isinstance(src, ExportSource) else read_export_source(src, dst_format, raw_weights)
    loaded = source.loaded
    if dtype is not None:
        loaded.model.to(EXPORT_DTYPES[dtype])
    return fmt.export(loaded, Path(dst), layout)

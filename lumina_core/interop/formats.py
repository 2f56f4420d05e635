"""Our converted-checkpoint format, and the generic state-dict helpers checkpoint formats use.

Our on-disk format (what :func:`convert` writes and :func:`read_converted` reads) is a folder with
``model.safetensors`` (a :class:`LuminaModel` state dict holding the trunk and one task) and ``config.json``
(trunk config, the task's AdapterSpec, the source, and what the format records beside them).
:func:`converted_state_dict` maps such a folder onto a model a recipe builds (``lumina sample <recipe> --ckpt
<converted>``), whatever the recipe calls its task. Which foreign formats :func:`convert` reads is up to the
plugins (``CHECKPOINT_FORMATS``, see :mod:`lumina_core.interop.checkpoint_format`); nothing here knows a
modality or a foreign key layout.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumina_core.interop.checkpoint_format import LoadedCheckpoint
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.rope import NDRope
from lumina_core.plugin import AdapterSpec

StateDict = dict[str, torch.Tensor]


# -- reading files -------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> StateDict:
    """A state dict from ``.safetensors`` or ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
            raise ValueError(f"{path} is not a readable safetensors file: {type(exc).__name__}: {exc}") from exc
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (EOFError, RuntimeError, OSError, ValueError) as exc:
            raise ValueError(
                f"{path} is not a readable PyTorch checkpoint (truncated or not a torch.save file): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        except pickle.UnpicklingError as exc:
            raise ValueError(
                f"{path} holds objects other than tensors (refused for safety: torch.load weights_only): {exc}"
            ) from exc
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a flat tensor state dict")
        return state
    raise ValueError(f"unsupported checkpoint file {path.name!r}: expected .safetensors or .pth/.pt/.bin")


def check_keys(got: set[str], expected: set[str], what: str) -> None:
    """ValueError listing the missing and unexpected keys when ``got`` is not ``expected``."""
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise ValueError(
            f"{what} state dict does not match: missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}"
        )


def load_strict(model: nn.Module, state: StateDict) -> None:
    """Load ``state`` into ``model`` (built on the meta device) with every key and shape checked: a
    ValueError lists what is missing, unexpected or of another shape rather than loading a partial model."""
    expected = model.state_dict()
    check_keys(set(state), set(expected), "converted")
    bad = [f"{k}: expected {tuple(v.shape)}, got {tuple(state[k].shape)}" for k, v in expected.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        more = f"; ... and {len(bad) - 8} more" if len(bad) > 8 else ""
        raise ValueError("state dict shapes do not match the config: " + "; ".join(bad[:8]) + more)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    for module in model.modules():  # non-persistent RoPE tables were built on meta: rebuild them
        if isinstance(module, NDRope):
            module.rebuild_tables("cpu")


def fused_splits(cfg: NextDiTConfig) -> dict[str, tuple[int, ...]]:
    """Row sizes of each fused trunk weight (``attention.wqkv.weight`` -> (q, k, v) ...) for this config."""
    q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    return {
        "attention.wqkv.weight": (q, kv, kv),
        "attention.wkv_y.weight": (kv, kv),
        "feed_forward.w13.weight": (cfg.ffn_hidden, cfg.ffn_hidden),
    }


def convert(src: str | Path, dst: str | Path, src_format: str, preset: str | None = None) -> Path:
    """Convert a checkpoint of the registered format ``src_format`` (``CHECKPOINT_FORMATS``; the image plugin
    provides ``released`` and ``diffusers``) to our format; returns the output folder ``dst``.

    ``preset`` names the trunk config (e.g. ``"2B"``); None infers it from the checkpoint.
    """
    from safetensors.torch import save_file

    from lumina_core.interop.checkpoint_format import checkpoint_format

    loaded = checkpoint_format(src_format).load(src, preset)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(dst / "model.safetensors"))
    meta = checkpoint_meta(loaded.model, loaded.task, src, src_format, loaded.extra)
    (dst / "config.json").write_text(json.dumps(meta, indent=2))
    return dst


#: the keys of a converted ``config.json`` that the core writes (a format's ``extra`` may not replace them)
CORE_META_KEYS = ("format", "model", "tasks", "source")


def checkpoint_meta(
    model: LuminaModel, task: str, src: str | Path = "", src_format: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``config.json`` of a converted checkpoint: trunk config, the task's spec, the source, and what the
    format records (``extra``)."""
    clash = sorted(set(extra or {}) & set(CORE_META_KEYS))
    if clash:
        raise ValueError(f"checkpoint format {src_format!r} records keys the core owns: {clash}")
    return {
        "format": "lumina",
        "model": model.config.to_dict(),
        "tasks": {task: dataclasses.asdict(model.adapters[task].spec)},
        **(extra or {}),
        "source": {"path": str(src), "format": src_format},
    }


def read_converted(path: str | Path) -> LoadedCheckpoint:
    """Read back what :func:`convert` wrote: the model (trunk and its one task), the task's name, and the keys
    of ``config.json`` the format recorded beside the core's (``extra``)."""
    from safetensors.torch import load_file

    path = Path(path)
    config = path / "config.json"
    if not config.is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} is not a converted checkpoint (expected config.json and model.safetensors written by "
            "`lumina convert`)"
        )
    meta = json.loads(config.read_text())
    if meta.get("format") != "lumina" or "model" not in meta or "tasks" not in meta:
        raise ValueError(f"the config.json of {path} was not written by `lumina convert` (format 'lumina')")
    cfg = NextDiTConfig.from_dict(meta["model"])
    tasks = {}
    for name, fields in meta["tasks"].items():
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        tasks[name] = AdapterSpec(**fields)
    if len(tasks) != 1:
        raise ValueError(f"a converted checkpoint holds one task; {path} holds {sorted(tasks)}")
    with torch.device("meta"):
        model = LuminaModel(cfg, tasks)
    load_strict(model, load_file(str(path / "model.safetensors")))
    extra = {k: v for k, v in meta.items() if k not in CORE_META_KEYS}
    return LoadedCheckpoint(model.eval(), next(iter(tasks)), extra)


#: trunk settings that change the function a checkpoint computes (the rest, e.g. grad_checkpointing, do not)
WEIGHT_FIELDS = (
    "dim", "n_layers", "n_heads", "n_kv_heads", "context_dim", "multiple_of", "ffn_dim_multiplier",
    "norm_eps", "qk_norm", "t_freq_dim", "max_cond_dim", "separate_cross_query",
    "family", "n_refiner_layers", "caption_rope_fraction", "qk_norm_eps", "unified_variant",
)  # fmt: skip
#: adapter settings a converted task must share with the recipe's task (train_extent comes from the recipe)
SPEC_FIELDS = ("in_dim", "out_dim", "num_axes", "axis_split", "rope_layout", "rope_theta")


def _spec_fields(spec: Any) -> dict[str, Any]:
    """The adapter fields, ``axis_split`` reduced to its lowest terms (RoPE pairs follow its ratios only, so a
    recipe's (1, 1) takes a checkpoint's (32, 32))."""
    import math

    values = spec if isinstance(spec, dict) else dataclasses.asdict(spec)
    out = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    split = out.get("axis_split")
    if split and all(isinstance(s, int) and s > 0 for s in split):
        g = math.gcd(*split)
        out["axis_split"] = tuple(s // g for s in split)
    return out


def trunk_differences(
    have: NextDiTConfig | dict[str, Any],
    want: NextDiTConfig | dict[str, Any],
    labels: tuple[str, str] = ("checkpoint", "recipe"),
    fields: tuple[str, ...] = WEIGHT_FIELDS,
) -> list[str]:
    """``"field: <label> value, <label> value"`` for each of ``fields`` where two trunk configs differ (the q/k
    norm epsilon compared as in effect: None is ``norm_eps``)."""
    a, b = (NextDiTConfig.from_dict(c).to_dict() if isinstance(c, dict) else c.to_dict() for c in (have, want))
    for cfg in (a, b):
        cfg["qk_norm_eps"] = cfg["norm_eps"] if cfg.get("qk_norm_eps") is None else cfg["qk_norm_eps"]
    return [f"{k}: {labels[0]} {a[k]!r}, {labels[1]} {b[k]!r}" for k in fields if a[k] != b[k]]


def spec_differences(
    have: AdapterSpec | dict[str, Any],
    want: AdapterSpec | dict[str, Any],
    labels: tuple[str, str] = ("checkpoint", "recipe"),
) -> list[str]:
    """The same for a task's adapter (:data:`SPEC_FIELDS`; ``axis_split`` by its ratios)."""
    a, b = _spec_fields(have), _spec_fields(want)
    return [f"{k}: {labels[0]} {a.get(k)!r}, {labels[1]} {b.get(k)!r}" for k in SPEC_FIELDS if a.get(k) != b.get(k)]


def converted_state_dict(path: str | Path, config: NextDiTConfig, tasks: dict[str, AdapterSpec]) -> StateDict:
    """The state dict of a converted checkpoint (:func:`convert`) for a LuminaModel built with ``config`` and
    ``tasks`` (e.g. from a recipe).

    The converted folder holds one task (the image formats name it ``"image"``); it is loaded under
    the name of the recipe's task: the same name if the recipe has it, otherwise the recipe's only task.
    The trunk settings and the task's token widths, RoPE axes and layout must agree; anything else raises
    a ValueError naming what the checkpoint has and what the recipe builds. The RoPE training extent is
    the recipe's (its image size); a different one in the checkpoint only gives a warning.
    """
    from safetensors.torch import load_file

    path = Path(path)
    src, dst = match_converted(json.loads((path / "config.json").read_text()), config, tasks, str(path))
    state = load_file(str(path / "model.safetensors"))
    prefix = f"adapters.{src}."
    return {(f"adapters.{dst}." + k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def match_converted(
    meta: dict[str, Any], config: NextDiTConfig, tasks: dict[str, AdapterSpec], path: str = "the checkpoint"
) -> tuple[str, str]:
    """``(checkpoint task, recipe task)`` for a converted checkpoint's ``config.json`` ``meta`` loaded into a
    model of ``config`` and ``tasks``; ValueError when it does not fit (see :func:`converted_state_dict`)."""
    import warnings

    if meta.get("format") != "lumina" or "model" not in meta or "tasks" not in meta:
        raise ValueError(f"the config.json of {path} was not written by `lumina convert` (format 'lumina')")
    diff = trunk_differences(NextDiTConfig.from_dict(meta["model"]), config)
    if diff:
        raise ValueError(
            f"the converted checkpoint at {path} does not match the recipe's model: " + "; ".join(diff)
            + " (set the recipe's model.* to the checkpoint's values; context_dim is the text encoder's width)"
        )
    src_tasks = dict(meta["tasks"])
    if len(src_tasks) != 1:
        raise ValueError(f"a converted checkpoint holds one task; {path} holds {sorted(src_tasks)}")
    (src, src_spec), = src_tasks.items()
    if src in tasks:
        dst = src
    elif len(tasks) == 1:
        dst = next(iter(tasks))
    else:
        raise ValueError(
            f"the converted checkpoint at {path} holds task {src!r}, which the recipe does not have, and the "
            f"recipe has several tasks {sorted(tasks)}: name the task {src!r} in the recipe"
        )
    have, need = _spec_fields(src_spec), _spec_fields(tasks[dst])
    bad = spec_differences(have, need)
    if bad:
        from lumina_core.interop.checkpoint_format import fit_advice

        source = (meta.get("source") or {}).get("format")
        advice = fit_advice(source) or "check the modality's parameters and the task's learn_sigma"
        raise ValueError(
            f"task {dst!r} of the recipe does not take the converted checkpoint's tokens: " + "; ".join(bad)
            + f" ({advice})"
        )
    if have.get("train_extent") != need.get("train_extent"):
        trained = have.get("train_extent")
        what = "records no training patch grid" if trained is None else f"was trained on a {trained} patch grid"
        warnings.warn(
            f"the converted checkpoint {what}; the recipe's task gives {need.get('train_extent')}, which RoPE "
            "scaling will use",
            stacklevel=3,
        )
    return src, dst

"""Load and export the public formats of the Lumina-Next image model (released and diffusers).

:func:`from_released` and :func:`from_diffusers` read them into a :class:`LuminaImageModel` (the image plugin's
``released`` and ``diffusers`` checkpoint formats call them; ``lumina convert`` then writes our format through
the core); :func:`to_released_state_dict` and :func:`to_diffusers_state_dict` write them back;
:func:`load_converted` reads a converted image checkpoint as a :class:`LuminaImageModel`. The key maps are
:mod:`lumina_modalities.image.interop.keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumina_core.interop.formats import (
    checkpoint_meta,
    fused_splits,
    load_strict,
    read_converted,
    read_state_dict,
)
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.plugin import AdapterSpec

from . import keys, unified_keys
from .checkpoint_files import diffusers_folder, released_file
from .lumina2 import from_lumina2
from .model import LuminaImageModel
from .z_image import from_z_image, is_z_image

StateDict = dict[str, torch.Tensor]
TASK = "image"


# -- config inference ---------------------------------------------------------------------------------------
def infer_config(released: StateDict, n_heads: int | None = None, **overrides: Any) -> NextDiTConfig:
    """Trunk config implied by a released-layout state dict (``n_heads`` is read from the cross-attention
    gate; a model without captions must give it)."""
    try:
        dim = released["x_embedder.weight"].shape[0]
        gate = released.get("layers.0.attention.gate")
        if n_heads is None:
            if gate is None:
                raise ValueError("cannot infer n_heads from a state dict without attention gates; pass n_heads")
            n_heads = gate.shape[0]
        head_dim = dim // n_heads
        n_kv = released["layers.0.attention.wk.weight"].shape[0] // head_dim
        wk_y = released.get("layers.0.attention.wk_y.weight")
        values = dict(
            dim=dim,
            n_layers=keys.num_layers(released),
            n_heads=n_heads,
            n_kv_heads=n_kv,
            context_dim=None if wk_y is None else wk_y.shape[1],
            qk_norm="layers.0.attention.q_norm.weight" in released,
            separate_cross_query="layers.0.attention.wq_y.weight" in released,
        )
    except KeyError as err:
        raise ValueError(f"released state dict lacks {err.args[0]!r}; cannot infer the model config") from err
    values.update(overrides)
    cfg = NextDiTConfig(**values)
    hidden = released["layers.0.feed_forward.w1.weight"].shape[0]
    if hidden != cfg.ffn_hidden:
        raise ValueError(
            f"FFN hidden width in the checkpoint is {hidden}; the config gives {cfg.ffn_hidden} "
            f"(multiple_of={cfg.multiple_of}, ffn_dim_multiplier={cfg.ffn_dim_multiplier}): pass matching values"
        )
    return cfg


def _resolve_config(config: NextDiTConfig | str | dict | None, released: StateDict) -> NextDiTConfig:
    if config is None:
        return infer_config(released)
    if isinstance(config, str):
        return NextDiTConfig.from_preset(config)
    if isinstance(config, dict):
        return NextDiTConfig.from_dict(config)
    return config


def build_from_released(
    released: StateDict,
    config: NextDiTConfig | str | dict | None,
    patch_size: int,
    train_extent: tuple[float, float] | None,
) -> LuminaImageModel:
    cfg = _resolve_config(config, released)
    released = {k: v for k, v in released.items() if not keys.IGNORED_RELEASED_KEYS.match(k)}
    try:
        in_dim = released["x_embedder.weight"].shape[1]
        out_dim = released["final_layer.linear.weight"].shape[0]
    except KeyError as err:
        raise ValueError(f"released state dict lacks {err.args[0]!r}") from err
    p2 = patch_size * patch_size
    if in_dim % p2:
        raise ValueError(f"x_embedder takes {in_dim} values per token, not a multiple of patch_size^2 = {p2}")
    spec = AdapterSpec(
        in_dim=in_dim, out_dim=out_dim, num_axes=2, axis_split=(1, 1), rope_layout="interleaved",
        train_extent=train_extent,
    )
    ours = keys.released_to_ours(released, TASK, patch_size, cfg.context_dim is not None, cfg.head_dim)
    with torch.device("meta"):
        model = LuminaModel(cfg, {TASK: spec})
    load_strict(model, ours)
    return LuminaImageModel(model.eval(), patch_size, in_dim // p2, TASK)


# -- public API ------------------------------------------------------------------------------------------------
def from_released(
    path_or_state_dict: str | Path | StateDict,
    config: NextDiTConfig | str | dict | None = None,
    patch_size: int = 2,
    sample_size: int | None = 128,
) -> LuminaImageModel:
    """Load a released Lumina-Next checkpoint (``consolidated*.pth`` / ``.safetensors``, or its state dict).

    ``config``: a NextDiTConfig, a preset name (``"2B"``) or None to infer it from the tensors. ``sample_size``
    is the training latent size (released 1024 px models: 128), giving the RoPE training extent
    ``sample_size / patch_size`` per axis; None leaves it unset.
    """
    if isinstance(path_or_state_dict, (str, Path)):
        state = read_state_dict(released_file(Path(path_or_state_dict)))
    else:
        state = dict(path_or_state_dict)
    extent = None if sample_size is None else (sample_size / patch_size,) * 2
    return build_from_released(state, config, patch_size, extent)


def from_diffusers(
    model_or_state_dict: Any,
    config: NextDiTConfig | str | dict | None = None,
    separate_cross_query: bool | None = None,
) -> LuminaImageModel:
    """Load diffusers' ``LuminaNextDiT2DModel`` or ``Lumina2Transformer2DModel`` (the module, its state dict, or a
    saved folder/file). Lumina-Image 2.0 loads into the ``unified`` trunk family (:func:`.lumina2.from_lumina2`).

    The module's (or folder's) config gives patch size, channels, heads and the training sample size; a
    bare state dict is read with patch size 2 and the config inferred from the tensors. A model whose
    ``attn2.to_q`` (or ``attn2.norm_q``) differs from ``attn1``'s loads with a separate cross-attention query
    (``separate_cross_query``: None decides from the tensors, see :func:`keys.diffusers_to_released`).
    """
    dconf: dict[str, Any] = {}
    if isinstance(model_or_state_dict, nn.Module):
        state = model_or_state_dict.state_dict()
        dconf = dict(getattr(model_or_state_dict, "config", {}) or {})
    elif isinstance(model_or_state_dict, (str, Path)):
        state, dconf = diffusers_folder(Path(model_or_state_dict))
    elif isinstance(model_or_state_dict, dict):
        state = dict(model_or_state_dict)
    else:
        raise ValueError(
            f"from_diffusers expects a LuminaNextDiT2DModel, its state dict or a saved folder; got {type(model_or_state_dict)}"
        )
    if unified_keys.is_lumina2_diffusers(state):  # Lumina-Image 2.0: the unified trunk family
        if config is not None and not isinstance(config, dict):
            raise ValueError("a Lumina2Transformer2DModel takes its config as Lumina2Transformer2DModel keywords (a dict)")
        return from_lumina2(state, {**dconf, **(config or {})})
    if is_z_image(state):  # Z-Image: the unified family's z_image variant
        if config is not None and not isinstance(config, dict):
            raise ValueError("a ZImageTransformer2DModel takes its config as ZImageTransformer2DModel keywords (a dict)")
        return from_z_image(state, {**dconf, **(config or {})})
    released = keys.diffusers_to_released(state, separate_cross_query=separate_cross_query)
    if isinstance(config, NextDiTConfig) and config.separate_cross_query != (
        "layers.0.attention.wq_y.weight" in released
    ):
        config = NextDiTConfig.from_dict(
            {**config.to_dict(), "separate_cross_query": "layers.0.attention.wq_y.weight" in released}
        )
    if config is None and dconf:
        config = _config_from_diffusers(dconf, released)
    patch = int(dconf.get("patch_size") or 2)
    sample = dconf.get("sample_size")
    extent = None if sample is None else (sample / patch,) * 2
    return build_from_released(released, config, patch, extent)


def _config_from_diffusers(dconf: dict[str, Any], released: StateDict) -> NextDiTConfig:
    return infer_config(
        released,
        n_heads=dconf.get("num_attention_heads"),
        multiple_of=dconf.get("multiple_of") or 256,
        ffn_dim_multiplier=dconf.get("ffn_dim_multiplier"),
        norm_eps=dconf.get("norm_eps") or 1e-5,
    )


def _unwrap(model: LuminaImageModel | LuminaModel, task: str, patch_size: int | None) -> tuple[LuminaModel, str, int]:
    if isinstance(model, LuminaImageModel):
        return model.model, model.task, model.patch_size
    if patch_size is None:
        raise ValueError("exporting a LuminaModel needs patch_size (the image task's patch size)")
    if task not in model.adapters:
        raise ValueError(f"unknown task {task!r}; tasks: {model.tasks}")
    return model, task, patch_size


def _fused_splits(model: LuminaModel) -> dict[str, tuple[int, ...]]:
    return fused_splits(model.config)


def to_released_state_dict(
    model: LuminaImageModel | LuminaModel, task: str = TASK, patch_size: int | None = None
) -> StateDict:
    """The released-layout state dict of the trunk and one image task (other tasks are left out)."""
    m, _, _ = _unwrap(model, task, patch_size)
    if m.config.separate_cross_query and m.config.context_dim is not None:
        raise ValueError(
            "the released Lumina-Next format has one query projection shared by self- and cross-attention; this "
            "model has a separate cross-attention query (separate_cross_query): export it to diffusers instead"
        )
    return _released_layout(model, task, patch_size)


def _released_layout(
    model: LuminaImageModel | LuminaModel, task: str = TASK, patch_size: int | None = None
) -> StateDict:
    m, task, p = _unwrap(model, task, patch_size)
    state = {k: v.detach() for k, v in m.state_dict().items()
             if k.startswith("trunk.") or k.startswith(f"adapters.{task}.")}
    return keys.ours_to_released(state, task, p, _fused_splits(m), m.config.head_dim)


def to_diffusers_state_dict(
    model: LuminaImageModel | LuminaModel, task: str = TASK, patch_size: int | None = None
) -> StateDict:
    """The state dict diffusers' ``LuminaNextDiT2DModel`` loads (query projection duplicated)."""
    if isinstance(model, LuminaImageModel):
        cfg = model.model.config
    else:
        cfg = model.config
    if cfg.context_dim is None:
        raise ValueError("diffusers' LuminaNextDiT2DModel always has a caption branch; this model has none")
    return keys.released_to_diffusers(_released_layout(model, task, patch_size))


def diffusers_config(model: LuminaImageModel) -> dict[str, Any]:
    """Constructor arguments of the equivalent diffusers ``LuminaNextDiT2DModel``."""
    cfg = model.model.config
    spec = model.model.adapters[model.task].spec
    extent = spec.train_extent
    if spec.out_dim not in (spec.in_dim, 2 * spec.in_dim):
        raise ValueError(f"diffusers predicts C or 2C channels; this model predicts {model.out_channels}")
    return dict(
        sample_size=int(extent[0] * model.patch_size) if extent else 128,
        patch_size=model.patch_size,
        in_channels=model.in_channels,
        hidden_size=cfg.dim,
        num_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_kv_heads=cfg.n_kv_heads,
        multiple_of=cfg.multiple_of,
        ffn_dim_multiplier=cfg.ffn_dim_multiplier,
        norm_eps=cfg.norm_eps,
        learn_sigma=spec.out_dim == 2 * spec.in_dim,
        qk_norm=cfg.qk_norm,
        cross_attention_dim=cfg.context_dim,
    )


def image_extra(image: LuminaImageModel) -> dict[str, Any]:
    """What an image format records beside the task: the image view :func:`load_converted` rebuilds."""
    return {"image": {"task": image.task, "patch_size": image.patch_size, "in_channels": image.in_channels}}


def converted_meta(image: LuminaImageModel, src: str | Path = "", src_format: str = "") -> dict[str, Any]:
    """The ``config.json`` of a converted image checkpoint of ``image``."""
    return checkpoint_meta(image.model, image.task, src, src_format, image_extra(image))


def load_converted(path: str | Path) -> LuminaImageModel:
    """Read back a converted image checkpoint (``lumina convert --from released|diffusers``) as an image model."""
    loaded = read_converted(path)
    img = loaded.extra.get("image")
    if not isinstance(img, dict):
        raise ValueError(
            f"{path} is a converted checkpoint without the image format's 'image' record in its config.json "
            f"(it holds {sorted(loaded.extra) or 'nothing'} beside the core's keys): not an image checkpoint"
        )
    return LuminaImageModel(loaded.model, img["patch_size"], img["in_channels"], loaded.task)

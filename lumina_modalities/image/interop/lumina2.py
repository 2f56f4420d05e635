"""Load and export Lumina-Image 2.0 (the ``unified`` trunk family) in its public layouts.

    image_model = from_lumina2(diffusers_module_or_state_or_path)     # diffusers' Lumina2Transformer2DModel,
                                                                      # a released / ComfyUI state dict or file
    out = image_model(x (B, C, H, W), t (B,), caption_feats (B, L, D), caption_mask (B, L))   # data - noise

``t`` is flow time (0 noise, 1 data): what ``Lumina2Pipeline`` passes its transformer (``1 - sigma``); the
output is the velocity ``x1 - x0`` (the pipeline negates it for its sigma-space scheduler). The key maps are
:mod:`.unified_keys`; :func:`.formats.from_diffusers` hands a Lumina-Image 2.0 module or state dict here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumina_core.interop.formats import load_strict, read_state_dict
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.unified import caption_axis_pairs, unified_ffn_hidden
from lumina_core.plugin import AdapterSpec

from . import unified_keys as ukeys
from .model import LuminaImageModel

StateDict = dict[str, torch.Tensor]
TASK = "image"

#: Lumina-Image 2.0 as released (diffusers' defaults except ``cap_feat_dim``, which the release sets to 2304)
LUMINA2_RELEASE = dict(
    patch_size=2, in_channels=16, hidden_size=2304, num_layers=26, num_refiner_layers=2, num_attention_heads=24,
    num_kv_heads=8, multiple_of=256, ffn_dim_multiplier=None, norm_eps=1e-5, axes_dim_rope=(32, 32, 32),
    cap_feat_dim=2304,
)


def config_from_lumina2(dconf: dict[str, Any]) -> tuple[NextDiTConfig, AdapterSpec, int]:
    """(trunk config, image adapter spec, patch size) of a ``Lumina2Transformer2DModel`` config mapping.

    Parity traps handled here: diffusers' q/k RMSNorm eps is fixed at 1e-5 (the original code: 1e-6), the
    caption width is ``cap_feat_dim`` (diffusers' class default 1024, the release 2304), and the RoPE axes
    ``axes_dim_rope`` become the caption-axis fraction and the image axes' split.
    """
    d = {**LUMINA2_RELEASE, **{k: v for k, v in dconf.items() if v is not None or k == "ffn_dim_multiplier"}}
    dim, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
    axes = tuple(int(a) for a in d["axes_dim_rope"])
    head_dim = dim // heads
    if len(axes) != 3 or sum(axes) != head_dim or any(a % 2 for a in axes):
        raise ValueError(f"axes_dim_rope {axes} must be three even widths adding up to the head dim {head_dim}")
    cfg = NextDiTConfig(
        family="unified", dim=dim, n_layers=int(d["num_layers"]), n_heads=heads, n_kv_heads=int(d["num_kv_heads"]),
        context_dim=int(d["cap_feat_dim"]), multiple_of=int(d["multiple_of"]),
        ffn_dim_multiplier=d["ffn_dim_multiplier"], norm_eps=float(d["norm_eps"]),
        n_refiner_layers=int(d["num_refiner_layers"]), caption_rope_fraction=axes[0] / head_dim, qk_norm_eps=1e-5,
    )
    p = int(d["patch_size"])
    c_in = int(d["in_channels"])
    c_out = int(d.get("out_channels") or c_in)
    spec = AdapterSpec(
        in_dim=c_in * p * p, out_dim=c_out * p * p, num_axes=2, axis_split=(axes[1], axes[2]), rope_layout="blocked"
    )
    want = tuple(a // 2 for a in axes)
    if caption_axis_pairs(head_dim, cfg.caption_rope_fraction, spec.axis_split) != want:
        raise ValueError(f"axes_dim_rope {axes} cannot be laid out as our caption axis + image axes")
    return cfg, spec, p


def infer_lumina2_config(released: StateDict, patch_size: int = 2) -> dict[str, Any]:
    """The ``Lumina2Transformer2DModel`` config of a released-layout state dict, read from the tensor shapes
    (heads from the per-head q/k norm width, ``multiple_of`` from the SwiGLU width; the RoPE axes, which no
    tensor records, are the release's (32, 32, 32) for 96-wide heads, else an even three-way split)."""
    counts = ukeys.block_counts(released)
    x_w = released["x_embedder.weight"]
    dim = x_w.shape[0]
    head_dim = released["layers.0.attention.q_norm.weight"].shape[0]
    qkv_rows = released["layers.0.attention.qkv.weight"].shape[0]
    p2 = patch_size * patch_size
    conf = dict(
        patch_size=patch_size, in_channels=x_w.shape[1] // p2,
        out_channels=released["final_layer.linear.weight"].shape[0] // p2, hidden_size=dim,
        num_layers=counts["layers"], num_refiner_layers=counts["noise_refiner"], num_attention_heads=dim // head_dim,
        num_kv_heads=(qkv_rows - dim) // 2 // head_dim, cap_feat_dim=released["cap_embedder.0.weight"].shape[0],
        axes_dim_rope=LUMINA2_RELEASE["axes_dim_rope"] if head_dim == 96 else _equal_axes(head_dim),
    )
    conf.update(_ffn_rule(dim, released["layers.0.feed_forward.w1.weight"].shape[0]))
    return conf


def _ffn_rule(dim: int, hidden: int) -> dict[str, Any]:
    """``multiple_of`` (and ``ffn_dim_multiplier`` if need be) giving SwiGLU width ``hidden`` from ``dim``: the
    largest power of two up to 256 that does, else a multiplier with ``multiple_of`` 1."""
    for m in (256, 128, 64, 32, 16, 8, 4, 2, 1):
        if unified_ffn_hidden(NextDiTConfig(family="unified", dim=dim, n_heads=1, multiple_of=m)) == hidden:
            return {"multiple_of": m, "ffn_dim_multiplier": None}
    return {"multiple_of": 1, "ffn_dim_multiplier": hidden / (4 * dim)}


def _equal_axes(head_dim: int) -> tuple[int, int, int]:
    third = head_dim // 3 // 2 * 2
    return (head_dim - 2 * third, third, third)


def build_lumina2(released: StateDict, dconf: dict[str, Any]) -> LuminaImageModel:
    """A :class:`LuminaImageModel` (unified family) holding a released-layout state dict."""
    cfg, spec, p = config_from_lumina2(dconf)
    ours = ukeys.released_to_ours(released, TASK, p, cfg.head_dim)
    with torch.device("meta"):
        model = LuminaModel(cfg, {TASK: spec})
    load_strict(model, ours)
    return LuminaImageModel(model.eval(), p, spec.in_dim // (p * p), TASK)


def from_lumina2(source: Any, config: dict[str, Any] | None = None) -> LuminaImageModel:
    """Load Lumina-Image 2.0 from diffusers' ``Lumina2Transformer2DModel`` (module, state dict or folder), a
    released or ComfyUI state dict, or a released / ComfyUI ``.safetensors`` / ``.pth`` file.

    ``config``: ``Lumina2Transformer2DModel`` constructor arguments; a module or folder brings its own, a bare
    state dict is read from its tensor shapes (:func:`infer_lumina2_config`).
    """
    dconf: dict[str, Any] = dict(config or {})
    if isinstance(source, nn.Module):
        state = source.state_dict()
        dconf = {**dict(getattr(source, "config", {}) or {}), **dconf}
    elif isinstance(source, (str, Path)):
        from .checkpoint_files import diffusers_folder

        path = Path(source)
        consolidated = sorted(path.glob("consolidated*")) if path.is_dir() else []
        if path.is_file() or consolidated:
            from .checkpoint_files import released_file

            state = read_state_dict(released_file(path))
        elif not path.exists():
            raise ValueError(f"no Lumina-Image 2.0 checkpoint at {path}: the path does not exist")
        else:
            state, folder_conf = diffusers_folder(path)
            dconf = {**folder_conf, **dconf}
    elif isinstance(source, dict):
        state = dict(source)
    else:
        raise ValueError(f"from_lumina2 expects a Lumina2Transformer2DModel, a state dict or a path; got {type(source)}")
    if any(k.endswith("x_pad_token") for k in state):
        raise ValueError(
            "this is a Z-Image checkpoint (it has Z-Image's pad tokens, x_pad_token / cap_pad_token), not "
            "Lumina-Image 2.0: convert it with --from z_image"
        )
    if ukeys.is_lumina2_diffusers(state):
        released = ukeys.diffusers_to_released(state)
    else:
        released = ukeys.strip_comfy_prefix(state)
        if not ukeys.is_lumina2_released(released):
            raise ValueError(
                "not a Lumina-Image 2.0 checkpoint: expected diffusers' Lumina2Transformer2DModel keys "
                "(time_caption_embed..., noise_refiner.N.attn.to_q) or the released layout "
                "(noise_refiner.N.attention.qkv, optionally with ComfyUI's 'model.diffusion_model.' prefix)"
            )
    if not {"hidden_size", "num_attention_heads"} <= set(dconf):
        dconf = {**infer_lumina2_config(released, int(dconf.get("patch_size") or 2)), **dconf}
    return build_lumina2(released, dconf)


def lumina2_config(image: LuminaImageModel) -> dict[str, Any]:
    """Constructor arguments of the ``Lumina2Transformer2DModel`` equivalent to a unified-family image model."""
    cfg = image.model.config
    rope = image.model.adapters[image.task].rope
    if cfg.family != "unified":
        raise ValueError(f"a Lumina-Image 2.0 export needs model.family 'unified'; this model is {cfg.family!r}")
    if cfg.unified_variant != "lumina2":
        raise ValueError(
            f"a Lumina-Image 2.0 export needs unified_variant 'lumina2'; this model is {cfg.unified_variant!r} "
            "(a Z-Image model exports with --to z_image)"
        )
    return dict(
        patch_size=image.patch_size, in_channels=image.in_channels, out_channels=image.out_channels,
        hidden_size=cfg.dim, num_layers=cfg.n_layers, num_refiner_layers=cfg.n_refiner_layers,
        num_attention_heads=cfg.n_heads, num_kv_heads=cfg.n_kv_heads, multiple_of=cfg.multiple_of,
        ffn_dim_multiplier=cfg.ffn_dim_multiplier, norm_eps=cfg.norm_eps,
        axes_dim_rope=tuple(2 * n for n in rope.pairs), cap_feat_dim=cfg.context_dim,
    )


def to_lumina2_released(image: LuminaImageModel) -> StateDict:
    """The released-layout state dict (ComfyUI: add ``model.diffusion_model.``) of a unified-family image model."""
    lumina2_config(image)  # checks the family
    state = {k: v.detach() for k, v in image.model.state_dict().items()}
    return ukeys.ours_to_released(state, image.task, image.patch_size, image.model.config.head_dim)


def to_lumina2_diffusers(image: LuminaImageModel) -> StateDict:
    """The state dict diffusers' ``Lumina2Transformer2DModel(**lumina2_config(image))`` loads."""
    return ukeys.released_to_diffusers(to_lumina2_released(image))

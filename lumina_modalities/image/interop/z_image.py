"""Load and export Z-Image (diffusers' ``ZImageTransformer2DModel``) as the ``unified`` family's ``z_image`` variant.

    image_model = from_z_image(module | state dict | path)     # the release / diffusers folder (sharded or not),
                                                               # ComfyUI's single file, or either layout's state
    out = image_model(x (B, C, H, W), t (B,), caption_feats (B, L, D), caption_mask (B, L))   # data - noise
    to_z_image_diffusers(image_model)    # loads into ZImageTransformer2DModel(**z_image_config(image_model))
    to_z_image_comfyui(image_model)      # ComfyUI's names (add "model.diffusion_model." for a checkpoint file)

``t`` is flow time (0 noise, 1 data): what ``ZImagePipeline`` passes its transformer (``(1000 - timestep) /
1000``); the output is the velocity ``x1 - x0`` (the pipeline negates it). The caption's valid tokens are the
ones ``ZImageTransformer2DModel`` receives as its per-sample list. Supported: single images (frame patch 1), one
patch size, no SigLIP image condition (``siglip_feat_dim`` None). The key maps are :mod:`.z_image_keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumina_core.interop.formats import load_strict
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.unified import caption_axis_pairs
from lumina_core.plugin import AdapterSpec

from . import unified_keys as ukeys
from . import z_image_keys as zkeys
from .model import LuminaImageModel
from .z_image_keys import is_z_image, z_image_to_ours

StateDict = dict[str, torch.Tensor]
TASK = "image"
#: Z-Image as released (diffusers' defaults; the release's transformer/config.json has the same values, and
#: ComfyUI's model detection derives them from a file's shapes: dim 3840, 30 heads, axes (32, 48, 48), theta 256)
Z_IMAGE_RELEASE = dict(
    all_patch_size=(2,),
    all_f_patch_size=(1,),
    in_channels=16,
    dim=3840,
    n_layers=30,
    n_refiner_layers=2,
    n_heads=30,
    n_kv_heads=30,
    norm_eps=1e-5,
    qk_norm=True,
    cap_feat_dim=2560,
    siglip_feat_dim=None,
    rope_theta=256.0,
    t_scale=1000.0,
    axes_dims=(32, 48, 48),
)
#: the RoPE table lengths of the release's config (caption, rows, columns); no tensor depends on them
RELEASE_AXES_LENS = (1536, 512, 512)

__all__ = [
    "Z_IMAGE_RELEASE",
    "config_from_z_image",
    "from_z_image",
    "infer_z_image_config",
    "is_z_image",
    "to_z_image_comfyui",
    "to_z_image_diffusers",
    "z_image_config",
    "z_image_to_ours",
]


def config_from_z_image(dconf: dict[str, Any]) -> tuple[NextDiTConfig, AdapterSpec, int]:
    """(trunk config, image adapter spec, patch size) of a ``ZImageTransformer2DModel`` config mapping."""
    d = {**Z_IMAGE_RELEASE, **{k: v for k, v in dconf.items() if v is not None or k == "siglip_feat_dim"}}
    unsupported = []
    if d["siglip_feat_dim"] is not None:
        unsupported.append("SigLIP image conditions (siglip_feat_dim)")
    if tuple(d["all_f_patch_size"]) != (1,) or len(d["all_patch_size"]) != 1:
        unsupported.append(
            f"patch sizes {d['all_patch_size']} x frames {d['all_f_patch_size']} (one patch size, frame 1)"
        )
    if float(d["t_scale"]) != 1000.0:
        unsupported.append(f"t_scale {d['t_scale']} (1000)")
    if unsupported:
        raise ValueError(
            "this Z-Image model uses what the unified family does not carry yet: " + "; ".join(unsupported)
        )
    dim, heads = int(d["dim"]), int(d["n_heads"])
    head_dim, axes = dim // heads, tuple(int(a) for a in d["axes_dims"])
    if len(axes) != 3 or sum(axes) != head_dim or any(a % 2 for a in axes):
        raise ValueError(f"axes_dims {axes} must be three even widths adding up to the head dim {head_dim}")
    cfg = NextDiTConfig(
        family="unified",
        unified_variant="z_image",
        dim=dim,
        n_layers=int(d["n_layers"]),
        n_heads=heads,
        n_kv_heads=heads,  # diffusers' Z-Image attention splits keys and values into n_heads heads
        context_dim=int(d["cap_feat_dim"]),
        norm_eps=float(d["norm_eps"]),
        qk_norm=bool(d["qk_norm"]),
        n_refiner_layers=int(d["n_refiner_layers"]),
        caption_rope_fraction=axes[0] / head_dim,
        qk_norm_eps=1e-5,
        max_cond_dim=256,
    )
    p, c = int(d["all_patch_size"][0]), int(d["in_channels"])
    spec = AdapterSpec(in_dim=c * p * p, out_dim=c * p * p, num_axes=2, axis_split=(axes[1], axes[2]),
                       rope_layout="blocked", rope_theta=float(d["rope_theta"]))  # fmt: skip
    if caption_axis_pairs(head_dim, cfg.caption_rope_fraction, spec.axis_split) != tuple(
        a // 2 for a in axes
    ):
        raise ValueError(f"axes_dims {axes} cannot be laid out as our caption axis + image axes")
    return cfg, spec, p


def infer_z_image_config(state: StateDict) -> dict[str, Any]:
    """The ``ZImageTransformer2DModel`` config of a release / diffusers state dict, read from the tensor shapes
    (heads from the per-head q/k norm width; the patch size from the ``all_x_embedder.{p}-1`` name). The RoPE
    axes, which no tensor records, are the release's (32, 48, 48) for 128-wide heads, else the same shares
    (1/4, 3/8, 3/8) of the head; theta, ``t_scale`` and ``norm_eps`` are the release's."""
    embeds = [k for k in state if k.startswith("all_x_embedder.") and k.endswith(".weight")]
    needed = ("layers.0.attention.norm_q.weight", "cap_embedder.0.weight")
    missing = [k for k in needed if k not in state]
    if len(embeds) != 1 or missing:
        raise ValueError(
            "cannot read a Z-Image config from this state dict's shapes: it needs one all_x_embedder.{p}-1.weight "
            f"(found {embeds or 'none'}) and {', '.join(needed)} (missing: {', '.join(missing) or 'none'}); pass "
            "the ZImageTransformer2DModel config (a diffusers folder's config.json) instead"
        )
    (embed,) = embeds
    p = int(embed.split(".")[1].split("-")[0])
    dim, cols = state[embed].shape
    counts = ukeys.block_counts(state)
    head_dim = state["layers.0.attention.norm_q.weight"].shape[0]
    side = (head_dim - head_dim // 4) // 4 * 2  # rows and columns: an even 3/8 of the head each
    axes = (32, 48, 48) if head_dim == 128 else (head_dim - 2 * side, side, side)
    return dict(
        all_patch_size=(p,),
        all_f_patch_size=(1,),
        in_channels=cols // (p * p),
        dim=dim,
        n_layers=counts["layers"],
        n_refiner_layers=counts["noise_refiner"],
        n_heads=dim // head_dim,
        n_kv_heads=dim // head_dim,
        cap_feat_dim=state["cap_embedder.0.weight"].shape[0],
        axes_dims=axes,
    )


def _read(source: Any) -> tuple[StateDict, dict[str, Any]]:
    """(state dict in any Z-Image layout, config known beside it) of a module, state dict, file or folder."""
    if isinstance(source, nn.Module):
        return source.state_dict(), dict(getattr(source, "config", {}) or {})
    if isinstance(source, dict):
        return dict(source), {}
    if isinstance(source, (str, Path)):
        from .checkpoint_files import diffusers_folder

        path = Path(source)
        if not path.exists():
            raise ValueError(f"no Z-Image checkpoint at {path}: the path does not exist")
        return diffusers_folder(path)
    raise ValueError(
        f"from_z_image expects a ZImageTransformer2DModel, a state dict or a path; got {type(source)}"
    )


def from_z_image(source: Any, config: dict[str, Any] | None = None) -> LuminaImageModel:
    """Load Z-Image from diffusers' ``ZImageTransformer2DModel`` (module, state dict or folder: the release's
    ``transformer/`` folder of sharded safetensors, or the pipeline folder holding it), or ComfyUI's single file
    / state dict (with or without ``model.diffusion_model.``).

    ``config``: ``ZImageTransformer2DModel`` constructor arguments; a module or folder brings its own, a bare
    state dict or ComfyUI file is read from its tensor shapes (:func:`infer_z_image_config`).
    """
    state, dconf = _read(source)
    dconf.update(config or {})
    if zkeys.is_z_image_comfy(state):
        state = zkeys.comfy_to_diffusers(state, int((dconf.get("all_patch_size") or (2,))[0]))
    if not is_z_image(state) and any(k.endswith("noise_refiner.0.attention.qkv.weight") for k in state):
        raise ValueError(
            "this is a Lumina-Image 2.0 checkpoint (the release's / ComfyUI's names without Z-Image's pad tokens), "
            "not Z-Image: convert it with --from lumina2"
        )
    if not is_z_image(state):
        raise ValueError(
            "not a Z-Image checkpoint: expected the release / diffusers ZImageTransformer2DModel keys (x_pad_token, "
            "all_x_embedder.2-1.weight, layers.N.attention.to_q.weight) or ComfyUI's single file (x_pad_token, "
            "layers.N.attention.qkv.weight, optionally under 'model.diffusion_model.')"
        )
    if not {"dim", "n_heads"} <= set(dconf):
        dconf = {**infer_z_image_config(state), **dconf}
    cfg, spec, p = config_from_z_image(dconf)
    with torch.device("meta"):
        model = LuminaModel(cfg, {TASK: spec})
    load_strict(model, z_image_to_ours(state, TASK, p, cfg.head_dim))
    return LuminaImageModel(model.eval(), p, spec.in_dim // (p * p), TASK)


def z_image_config(image: LuminaImageModel) -> dict[str, Any]:
    """Constructor arguments of the ``ZImageTransformer2DModel`` equivalent to a ``z_image`` image model."""
    cfg = image.model.config
    if cfg.family != "unified" or cfg.unified_variant != "z_image":
        raise ValueError(
            "a Z-Image export needs model.family 'unified' with unified_variant 'z_image'; this model is "
            f"{cfg.family!r}" + (f" ({cfg.unified_variant!r})" if cfg.family == "unified" else "")
        )
    adapter = image.model.adapters[image.task]
    return dict(
        all_patch_size=(image.patch_size,),
        all_f_patch_size=(1,),
        in_channels=image.in_channels,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_refiner_layers=cfg.n_refiner_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads,
        norm_eps=cfg.norm_eps,
        qk_norm=cfg.qk_norm,
        cap_feat_dim=cfg.context_dim,
        rope_theta=float(adapter.spec.rope_theta),
        t_scale=1000.0,
        axes_dims=tuple(2 * n for n in adapter.rope.pairs),
        axes_lens=RELEASE_AXES_LENS,
    )


def to_z_image_diffusers(image: LuminaImageModel) -> StateDict:
    """The release / diffusers layout (``ZImageTransformer2DModel(**z_image_config(image))`` loads it)."""
    z_image_config(image)  # checks the family and variant
    state = {k: v.detach() for k, v in image.model.state_dict().items()}
    return zkeys.ours_to_z_image(state, image.task, image.patch_size, image.model.config.head_dim)


def to_z_image_comfyui(image: LuminaImageModel) -> StateDict:
    """ComfyUI's names of a ``z_image`` image model (prefix them with ``model.diffusion_model.`` for a checkpoint)."""
    return zkeys.diffusers_to_comfy(to_z_image_diffusers(image))

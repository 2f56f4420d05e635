"""Load Z-Image (diffusers' ``ZImageTransformer2DModel``) into the ``unified`` trunk family, ``z_image`` variant.

    image_model = from_z_image(diffusers_module_or_state_dict)
    out = image_model(x (B, C, H, W), t (B,), caption_feats (B, L, D), caption_mask (B, L))   # data - noise

``t`` is flow time (0 noise, 1 data): what ``ZImagePipeline`` passes its transformer (``(1000 - timestep) /
1000``); the output is the velocity ``x1 - x0`` (the pipeline negates it). The caption's valid tokens are the
ones ``ZImageTransformer2DModel`` receives as its per-sample list. Supported: single images (frame patch 1), one
patch size, no SigLIP image condition (``siglip_feat_dim`` None).

Keys (diffusers -> ours): ``all_x_embedder.{p}-1`` -> the image adapter's ``x_embedder`` (columns from (ph, pw, C)
to (C, ph, pw)), ``all_final_layer.{p}-1`` -> its ``final_layer`` (rows likewise), ``x_pad_token`` /
``cap_pad_token`` / ``t_embedder`` / ``cap_embedder`` -> the trunk's, per block ``attention.to_q/to_k/to_v`` ->
``attention.wqkv`` (query/key rows in our RoPE pair order), ``attention.norm_q/norm_k`` -> ``q_norm/k_norm``,
``attention.to_out.0`` -> ``wo``, ``feed_forward.w1 | w3`` -> ``w13``, ``adaLN_modulation.0`` -> ``adaLN_modulation.1``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumina_core.interop.formats import check_keys, load_strict
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.unified import caption_axis_pairs
from lumina_core.plugin import AdapterSpec

from .keys import readout_permutation, rope_permutation
from .model import LuminaImageModel

StateDict = dict[str, torch.Tensor]
TASK = "image"
_BLOCK = re.compile(r"^(context_refiner|noise_refiner|layers)\.(\d+)\.(.+)$")
_RENAMED = {
    "attention.to_out.0.weight": "attention.wo.weight",
    "feed_forward.w2.weight": "feed_forward.w2.weight",
    "attention_norm1.weight": "attention_norm1.weight",
    "attention_norm2.weight": "attention_norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "adaLN_modulation.0.weight": "adaLN_modulation.1.weight",
    "adaLN_modulation.0.bias": "adaLN_modulation.1.bias",
}
#: Z-Image as released (diffusers' defaults)
Z_IMAGE_RELEASE = dict(
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2,
    n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, siglip_feat_dim=None,
    rope_theta=256.0, t_scale=1000.0, axes_dims=(32, 48, 48),
)


def is_z_image(state: StateDict) -> bool:
    """True for a diffusers ``ZImageTransformer2DModel`` state dict."""
    return "x_pad_token" in state and any(k.startswith("all_x_embedder.") for k in state)


def config_from_z_image(dconf: dict[str, Any]) -> tuple[NextDiTConfig, AdapterSpec, int]:
    """(trunk config, image adapter spec, patch size) of a ``ZImageTransformer2DModel`` config mapping."""
    d = {**Z_IMAGE_RELEASE, **{k: v for k, v in dconf.items() if v is not None or k == "siglip_feat_dim"}}
    unsupported = []
    if d["siglip_feat_dim"] is not None:
        unsupported.append("SigLIP image conditions (siglip_feat_dim)")
    if tuple(d["all_f_patch_size"]) != (1,) or len(d["all_patch_size"]) != 1:
        unsupported.append(f"patch sizes {d['all_patch_size']} x frames {d['all_f_patch_size']} (one patch size, frame 1)")
    if float(d["t_scale"]) != 1000.0:
        unsupported.append(f"t_scale {d['t_scale']} (1000)")
    if unsupported:
        raise ValueError("this Z-Image model uses what the unified family does not carry yet: " + "; ".join(unsupported))
    dim, heads = int(d["dim"]), int(d["n_heads"])
    head_dim, axes = dim // heads, tuple(int(a) for a in d["axes_dims"])
    if len(axes) != 3 or sum(axes) != head_dim or any(a % 2 for a in axes):
        raise ValueError(f"axes_dims {axes} must be three even widths adding up to the head dim {head_dim}")
    cfg = NextDiTConfig(
        family="unified", unified_variant="z_image", dim=dim, n_layers=int(d["n_layers"]), n_heads=heads,
        n_kv_heads=heads,  # diffusers' Z-Image attention splits keys and values into n_heads heads
        context_dim=int(d["cap_feat_dim"]), norm_eps=float(d["norm_eps"]), qk_norm=bool(d["qk_norm"]),
        n_refiner_layers=int(d["n_refiner_layers"]), caption_rope_fraction=axes[0] / head_dim, qk_norm_eps=1e-5,
        max_cond_dim=256,
    )
    p, c = int(d["all_patch_size"][0]), int(d["in_channels"])
    spec = AdapterSpec(in_dim=c * p * p, out_dim=c * p * p, num_axes=2, axis_split=(axes[1], axes[2]),
                       rope_layout="blocked", rope_theta=float(d["rope_theta"]))  # fmt: skip
    if caption_axis_pairs(head_dim, cfg.caption_rope_fraction, spec.axis_split) != tuple(a // 2 for a in axes):
        raise ValueError(f"axes_dims {axes} cannot be laid out as our caption axis + image axes")
    return cfg, spec, p


def z_image_to_ours(state: StateDict, task: str, patch_size: int, head_dim: int) -> StateDict:
    """Our ``LuminaModel`` state dict (unified family, ``z_image`` variant, image task ``task``)."""
    ours: StateDict = {}
    unknown = []
    head_perm = rope_permutation(head_dim, head_dim)
    p2 = patch_size * patch_size
    for k, v in state.items():
        m = _BLOCK.match(k)
        if m is None:
            if k.startswith("all_x_embedder."):
                name = "x_embedder." + k.rsplit(".", 1)[1]
                readin = readout_permutation(patch_size, state[f"{k.rsplit('.', 1)[0]}.weight"].shape[1] // p2)
                ours[f"adapters.{task}.{name}"] = v[:, readin] if name.endswith("weight") else v
            elif k.startswith("all_final_layer."):
                name = "final_layer." + k.split(".", 2)[2]
                if name.startswith("final_layer.linear."):
                    v = v[readout_permutation(patch_size, v.shape[0] // p2)]
                ours[f"adapters.{task}.{name}"] = v
            elif k in ("x_pad_token", "cap_pad_token") or k.startswith(("t_embedder.", "cap_embedder.")):
                ours[f"trunk.{k}"] = v
            else:
                unknown.append(k)
            continue
        group, i, name = m.groups()
        head = f"trunk.{group}.{i}."
        if name == "attention.to_q.weight":
            q, kk, vv = (state[f"{group}.{i}.attention.to_{p}.weight"] for p in "qkv")
            q, kk = q[rope_permutation(q.shape[0], head_dim)], kk[rope_permutation(kk.shape[0], head_dim)]
            ours[head + "attention.wqkv.weight"] = torch.cat([q, kk, vv], 0)
        elif name in ("attention.to_k.weight", "attention.to_v.weight", "feed_forward.w3.weight"):
            continue
        elif name in ("attention.norm_q.weight", "attention.norm_k.weight"):
            ours[head + ("attention.q_norm.weight" if "norm_q" in name else "attention.k_norm.weight")] = v[head_perm]
        elif name == "feed_forward.w1.weight":
            ours[head + "feed_forward.w13.weight"] = torch.cat([v, state[f"{group}.{i}.feed_forward.w3.weight"]], 0)
        elif name in _RENAMED:
            ours[head + _RENAMED[name]] = v
        else:
            unknown.append(k)
    if unknown:
        check_keys(set(), set(unknown), "diffusers ZImageTransformer2DModel (unexpected keys)")
    ours[f"adapters.{task}.pad_token"] = torch.zeros(state["x_pad_token"].shape[-1], dtype=state["x_pad_token"].dtype)
    return ours


def from_z_image(source: Any, config: dict[str, Any] | None = None) -> LuminaImageModel:
    """Load diffusers' ``ZImageTransformer2DModel`` (the module, its state dict with ``config``, or a saved folder)."""
    dconf: dict[str, Any] = dict(config or {})
    if isinstance(source, nn.Module):
        state = source.state_dict()
        dconf = {**dict(getattr(source, "config", {}) or {}), **dconf}
    elif isinstance(source, (str, Path)):
        from .checkpoint_files import diffusers_folder

        state, folder_conf = diffusers_folder(Path(source))
        dconf = {**folder_conf, **dconf}
    elif isinstance(source, dict):
        state = dict(source)
    else:
        raise ValueError(f"from_z_image expects a ZImageTransformer2DModel, a state dict or a folder; got {type(source)}")
    if not is_z_image(state):
        raise ValueError("not a ZImageTransformer2DModel state dict (no x_pad_token / all_x_embedder.* keys)")
    cfg, spec, p = config_from_z_image(dconf)
    with torch.device("meta"):
        model = LuminaModel(cfg, {TASK: spec})
    load_strict(model, z_image_to_ours(state, TASK, p, cfg.head_dim))
    return LuminaImageModel(model.eval(), p, spec.in_dim // (p * p), TASK)

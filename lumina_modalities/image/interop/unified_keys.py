"""Key maps of Lumina-Image 2.0 (the ``unified`` trunk family) between its public layouts and ours.

* released (the original code's ``consolidated*.pth``; ComfyUI's single file adds ``model.diffusion_model.``):
  ``x_embedder``, ``t_embedder.mlp.{0,2}``, ``cap_embedder.{0,1}``, per block (``context_refiner.N``,
  ``noise_refiner.N``, ``layers.N``) ``attention.qkv`` (rows [q | k | v]), ``attention.out``,
  ``attention.{q,k}_norm``, ``feed_forward.w{1,2,3}``, ``attention_norm{1,2}``, ``ffn_norm{1,2}``,
  ``adaLN_modulation.1`` (modulated blocks), ``final_layer.adaLN_modulation.1``, ``final_layer.linear``
  (plus an unused ``norm_final.weight`` that some files carry);
* diffusers' ``Lumina2Transformer2DModel``: the same tensors renamed (``attn.to_q/to_k/to_v``, ``attn.to_out.0``,
  ``attn.norm_q/norm_k``, ``feed_forward.linear_{1,2,3}``, ``norm1.linear`` + ``norm1.norm`` (``norm1`` in the
  context refiner), ``norm2``, ``time_caption_embed.*``, ``norm_out.linear_{1,2}``);
* ours: :class:`~lumina_core.model.LuminaModel` with ``family="unified"`` and an image task: fused ``wqkv``
  and ``w13``, query/key channels of each head in "halves" order (RoPE pair j = channels (j, j + d/2), as in
  :func:`.keys.rope_permutation`), patch vectors in (C, ph, pw) order on the way in and out (the released
  model reads them in (ph, pw, C) order: the ``x_embedder`` columns and final-layer rows are permuted).

All conversions go through the released layout; each raises ValueError naming the missing and unexpected keys.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from lumina_core.interop.formats import check_keys
from lumina_modalities.image.interop.keys import readout_permutation, rope_permutation
from lumina_modalities.image.interop.layout_files import COMFY_PREFIX  # ComfyUI's single-file prefix

StateDict = dict[str, Tensor]

#: the three block stacks, in the order the network runs them
BLOCK_GROUPS = ("context_refiner", "noise_refiner", "layers")
#: a key the released files carry that no module reads
UNUSED_RELEASED = ("norm_final.weight",)

_GLOBAL_TO_DIFFUSERS = {
    "t_embedder.mlp.0": "time_caption_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_caption_embed.timestep_embedder.linear_2",
    "cap_embedder.0": "time_caption_embed.caption_embedder.0",
    "cap_embedder.1": "time_caption_embed.caption_embedder.1",
    "final_layer.adaLN_modulation.1": "norm_out.linear_1",
    "final_layer.linear": "norm_out.linear_2",
    "x_embedder": "x_embedder",
}
_BLOCK_TO_DIFFUSERS = {
    "attention.out.weight": "attn.to_out.0.weight",
    "attention.q_norm.weight": "attn.norm_q.weight",
    "attention.k_norm.weight": "attn.norm_k.weight",
    "feed_forward.w1.weight": "feed_forward.linear_1.weight",
    "feed_forward.w2.weight": "feed_forward.linear_2.weight",
    "feed_forward.w3.weight": "feed_forward.linear_3.weight",
    "attention_norm2.weight": "norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "adaLN_modulation.1.weight": "norm1.linear.weight",
    "adaLN_modulation.1.bias": "norm1.linear.bias",
}
_BLOCK_KEY = re.compile(r"^(context_refiner|noise_refiner|layers)\.(\d+)\.(.+)$")


def is_lumina2_diffusers(state: StateDict) -> bool:
    """True for a diffusers ``Lumina2Transformer2DModel`` state dict."""
    return "time_caption_embed.caption_embedder.1.weight" in state and any(
        k.startswith("noise_refiner.") for k in state
    )


def is_lumina2_released(state: StateDict) -> bool:
    """True for an original-layout Lumina-Image 2.0 state dict (with or without ComfyUI's prefix)."""
    return any(k.endswith("noise_refiner.0.attention.qkv.weight") for k in state)


def strip_comfy_prefix(state: StateDict) -> StateDict:
    """The released layout of a ComfyUI single file (``model.diffusion_model.`` removed). A file with prefixed
    keys keeps only those: ComfyUI's all-in-one checkpoints also hold the autoencoder and the text encoder under
    other prefixes, which its loader sets aside the same way."""
    if not any(k.startswith(COMFY_PREFIX) for k in state):
        return dict(state)
    return {k[len(COMFY_PREFIX):]: v for k, v in state.items() if k.startswith(COMFY_PREFIX)}


def block_counts(state: StateDict) -> dict[str, int]:
    """Number of blocks in each stack of a released or diffusers state dict."""
    counts = dict.fromkeys(BLOCK_GROUPS, 0)
    for k in state:
        m = _BLOCK_KEY.match(k)
        if m:
            counts[m.group(1)] = max(counts[m.group(1)], int(m.group(2)) + 1)
    return counts


def _block_names(modulated: bool) -> list[str]:
    names = ["attention.qkv.weight", *_BLOCK_TO_DIFFUSERS, "attention_norm1.weight"]
    return [n for n in names if modulated or not n.startswith("adaLN_modulation")]


def released_keys(counts: dict[str, int]) -> set[str]:
    """Every key of a released state dict with these block counts."""
    keys = {f"{k}.{p}" for k in _GLOBAL_TO_DIFFUSERS for p in ("weight", "bias")} - {"cap_embedder.0.bias"}
    for group in BLOCK_GROUPS:
        keys |= {f"{group}.{i}.{n}" for i in range(counts[group]) for n in _block_names(group != "context_refiner")}
    return keys


def _norm1_name(group: str) -> str:
    return "norm1.weight" if group == "context_refiner" else "norm1.norm.weight"


def released_to_diffusers(state: StateDict) -> StateDict:
    """Rename (and split ``qkv`` into ``to_q/to_k/to_v``) a released state dict for ``Lumina2Transformer2DModel``."""
    state = {k: v for k, v in state.items() if k not in UNUSED_RELEASED}
    check_keys(set(state), released_keys(block_counts(state)), "released Lumina-Image 2.0")
    out: StateDict = {}
    q_rows, kv_rows = _qkv_rows(state)
    for k, v in state.items():
        m = _BLOCK_KEY.match(k)
        if m is None:
            prefix, param = k.rsplit(".", 1)
            out[f"{_GLOBAL_TO_DIFFUSERS[prefix]}.{param}"] = v
            continue
        group, i, name = m.groups()
        head = f"{group}.{i}."
        if name == "attention.qkv.weight":
            q, kk, vv = v.split([q_rows, kv_rows, kv_rows], 0)
            out[head + "attn.to_q.weight"], out[head + "attn.to_k.weight"], out[head + "attn.to_v.weight"] = q, kk, vv
        elif name == "attention_norm1.weight":
            out[head + _norm1_name(group)] = v
        else:
            out[head + _BLOCK_TO_DIFFUSERS[name]] = v
    return out


def diffusers_to_released(state: StateDict) -> StateDict:
    """The released layout of a ``Lumina2Transformer2DModel`` state dict (``to_q/to_k/to_v`` fused into ``qkv``)."""
    back_global = {v: k for k, v in _GLOBAL_TO_DIFFUSERS.items()}
    back_block = {v: k for k, v in _BLOCK_TO_DIFFUSERS.items()}
    out: StateDict = {}
    unknown = []
    for k, v in state.items():
        m = _BLOCK_KEY.match(k)
        if m is None:
            prefix, _, param = k.rpartition(".")
            if prefix in back_global:
                out[f"{back_global[prefix]}.{param}"] = v
            else:
                unknown.append(k)
            continue
        group, i, name = m.groups()
        head = f"{group}.{i}."
        if name in ("attn.to_k.weight", "attn.to_v.weight"):
            continue
        if name == "attn.to_q.weight":
            parts = [state.get(head + f"attn.to_{p}.weight") for p in "qkv"]
            if any(p is None for p in parts):
                unknown.append(k)
                continue
            out[head + "attention.qkv.weight"] = torch.cat(parts, 0)
        elif name == _norm1_name(group):
            out[head + "attention_norm1.weight"] = v
        elif name in back_block:
            out[head + back_block[name]] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(
            f"not a Lumina2Transformer2DModel state dict: unexpected keys {sorted(unknown)[:8]}"
            + (f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else "")
        )
    check_keys(set(out), released_keys(block_counts(out)), "diffusers Lumina2Transformer2DModel")
    return out


def _qkv_rows(state: StateDict) -> tuple[int, int]:
    """(query rows, key rows) of the fused ``qkv``: the q/k norm width gives the head size, ``out`` the query width."""
    any_block = next(k[: -len("attention.qkv.weight")] for k in state if k.endswith("attention.qkv.weight"))
    q_rows = state[any_block + "attention.out.weight"].shape[1]
    total = state[any_block + "attention.qkv.weight"].shape[0]
    return q_rows, (total - q_rows) // 2


def released_to_ours(state: StateDict, task: str, patch_size: int, head_dim: int) -> StateDict:
    """Our ``LuminaModel`` state dict (unified family, image task ``task``) from a released one."""
    state = {k: v for k, v in state.items() if k not in UNUSED_RELEASED}
    check_keys(set(state), released_keys(block_counts(state)), "released Lumina-Image 2.0")
    q_rows, kv_rows = _qkv_rows(state)
    out_rows = state["final_layer.linear.weight"].shape[0]
    readout = readout_permutation(patch_size, out_rows // (patch_size * patch_size))
    in_cols = state["x_embedder.weight"].shape[1]
    readin = readout_permutation(patch_size, in_cols // (patch_size * patch_size))
    head_perm = rope_permutation(head_dim, head_dim)
    ours: StateDict = {}
    for k, v in state.items():
        m = _BLOCK_KEY.match(k)
        if m is None:
            if k.startswith("x_embedder."):
                ours[f"adapters.{task}.{k}"] = v[:, readin] if k.endswith("weight") else v
            elif k.startswith("final_layer.linear."):
                ours[f"adapters.{task}.{k}"] = v[readout]
            elif k.startswith("final_layer."):
                ours[f"adapters.{task}.{k}"] = v
            else:
                ours[f"trunk.{k}"] = v
            continue
        group, i, name = m.groups()
        head = f"trunk.{group}.{i}."
        if name == "attention.qkv.weight":
            q, kk, vv = v.split([q_rows, kv_rows, kv_rows], 0)
            q, kk = q[rope_permutation(q_rows, head_dim)], kk[rope_permutation(kv_rows, head_dim)]
            ours[head + "attention.wqkv.weight"] = torch.cat([q, kk, vv], 0)
        elif name in ("attention.q_norm.weight", "attention.k_norm.weight"):
            ours[head + name] = v[head_perm]
        elif name == "attention.out.weight":
            ours[head + "attention.wo.weight"] = v
        elif name == "feed_forward.w1.weight":
            ours[head + "feed_forward.w13.weight"] = torch.cat([v, state[f"{group}.{i}.feed_forward.w3.weight"]], 0)
        elif name == "feed_forward.w3.weight":
            continue
        else:
            ours[head + name] = v
    dim = state["x_embedder.weight"].shape[0]
    ours[f"adapters.{task}.pad_token"] = torch.zeros(dim, dtype=state["x_embedder.weight"].dtype)
    return ours


def ours_to_released(state: StateDict, task: str, patch_size: int, head_dim: int) -> StateDict:
    """The released layout of our unified trunk plus image task ``task`` (other tasks' adapters are left out;
    the pad token, which the released model has not, is dropped)."""
    out: StateDict = {}
    prefix = f"adapters.{task}."
    for k, v in state.items():
        if k.startswith(prefix):
            name = k[len(prefix):]
            if name.startswith("x_embedder."):
                readin = readout_permutation(patch_size, v.shape[-1] // (patch_size * patch_size))
                out[name] = v[:, torch.argsort(readin)] if name.endswith("weight") else v
            elif name.startswith("final_layer.linear."):
                readout = readout_permutation(patch_size, v.shape[0] // (patch_size * patch_size))
                out[name] = v[torch.argsort(readout)]
            elif name.startswith("final_layer."):
                out[name] = v
            elif name != "pad_token":
                raise ValueError(f"the released Lumina-Image 2.0 layout has no place for {k!r}")
            continue
        if not k.startswith("trunk."):
            continue
        name = k[len("trunk."):]
        m = _BLOCK_KEY.match(name)
        if m is None:
            out[name] = v
            continue
        group, i, part = m.groups()
        head = f"{group}.{i}."
        if part == "attention.wqkv.weight":
            q_rows = state[f"trunk.{head}attention.wo.weight"].shape[1]
            kv_rows = (v.shape[0] - q_rows) // 2
            q, kk, vv = v.split([q_rows, kv_rows, kv_rows], 0)
            q = q[torch.argsort(rope_permutation(q_rows, head_dim))]
            kk = kk[torch.argsort(rope_permutation(kv_rows, head_dim))]
            out[head + "attention.qkv.weight"] = torch.cat([q, kk, vv], 0)
        elif part in ("attention.q_norm.weight", "attention.k_norm.weight"):
            out[head + part] = v[torch.argsort(rope_permutation(head_dim, head_dim))]
        elif part == "attention.wo.weight":
            out[head + "attention.out.weight"] = v
        elif part == "feed_forward.w13.weight":
            w1, w3 = v.chunk(2, 0)
            out[head + "feed_forward.w1.weight"], out[head + "feed_forward.w3.weight"] = w1, w3
        else:
            out[head + part] = v
    check_keys(set(out), released_keys(block_counts(out)), "our unified model in the released layout")
    return out

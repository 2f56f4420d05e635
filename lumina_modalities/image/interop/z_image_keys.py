"""Key maps of Z-Image (the ``unified`` family's ``z_image`` variant) between its public layouts and ours.

* release / diffusers (the same names: Tongyi-MAI's own ``ZImageTransformer2DModel`` and diffusers' share them,
  and the release ships a diffusers ``transformer/`` folder of sharded safetensors):
  ``all_x_embedder.{p}-1``, ``all_final_layer.{p}-1.{linear, adaLN_modulation.1}``, ``t_embedder.mlp.{0,2}``,
  ``cap_embedder.{0,1}``, ``x_pad_token``, ``cap_pad_token``, per block (``context_refiner.N``,
  ``noise_refiner.N``, ``layers.N``) ``attention.to_q/to_k/to_v``, ``attention.to_out.0``,
  ``attention.norm_q/norm_k``, ``feed_forward.w{1,2,3}``, ``attention_norm{1,2}``, ``ffn_norm{1,2}``,
  ``adaLN_modulation.0`` (modulated blocks);
* ComfyUI's single file (its Lumina 2 ``NextDiT`` names; optionally under ``model.diffusion_model.``):
  ``x_embedder``, ``final_layer``, ``attention.qkv`` (rows [q | k | v]), ``attention.out``,
  ``attention.q_norm/k_norm``, every other name as above (plus an unused ``norm_final.weight`` some files
  carry). diffusers' ``convert_z_image_transformer_checkpoint_to_diffusers`` is this map one way;
* ours: :class:`~lumina_core.model.LuminaModel` (unified family, ``z_image`` variant, one image task): fused
  ``wqkv`` and ``w13``, query/key channels of each head in "halves" order (:func:`.keys.rope_permutation`),
  patch vectors in (C, ph, pw) order (the release reads them in (ph, pw, C) order).

Each map raises ValueError naming the keys it did not expect.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lumina_core.interop.formats import check_keys

from .keys import readout_permutation, rope_permutation
from .unified_keys import _BLOCK_KEY, UNUSED_RELEASED, strip_comfy_prefix

StateDict = dict[str, Tensor]

#: ComfyUI's single-file prefix
#: a key some single files carry that no module reads
UNUSED = UNUSED_RELEASED
_BLOCK = _BLOCK_KEY
#: block tensors whose names differ between ComfyUI (left) and diffusers (right); qkv is split / fused apart
_COMFY_BLOCK = {
    "attention.out.weight": "attention.to_out.0.weight",
    "attention.q_norm.weight": "attention.norm_q.weight",
    "attention.k_norm.weight": "attention.norm_k.weight",
}
#: ours (right) from diffusers (left), block tensors that are renamed only
_OURS_BLOCK = {
    "attention.to_out.0.weight": "attention.wo.weight",
    "feed_forward.w2.weight": "feed_forward.w2.weight",
    "attention_norm1.weight": "attention_norm1.weight",
    "attention_norm2.weight": "attention_norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "adaLN_modulation.0.weight": "adaLN_modulation.1.weight",
    "adaLN_modulation.0.bias": "adaLN_modulation.1.bias",
}
_GLOBAL = ("x_pad_token", "cap_pad_token", "t_embedder.", "cap_embedder.")


def is_z_image(state: StateDict) -> bool:
    """True for a release / diffusers ``ZImageTransformer2DModel`` state dict."""
    return "x_pad_token" in state and any(k.startswith("all_x_embedder.") for k in state)


def is_z_image_comfy(state: StateDict) -> bool:
    """True for ComfyUI's Z-Image single file (with or without ``model.diffusion_model.``): fused ``qkv`` and
    the pad tokens (Lumina-Image 2.0 files have ``qkv`` but no pad tokens)."""
    return any(k.endswith("layers.0.attention.qkv.weight") for k in state) and any(
        k.endswith("x_pad_token") for k in state
    )


def patch_key(patch_size: int) -> str:
    """The ``all_x_embedder`` / ``all_final_layer`` entry of one patch size (frame patch 1)."""
    return f"{patch_size}-1"


def comfy_to_diffusers(state: StateDict, patch_size: int = 2) -> StateDict:
    """The release / diffusers layout of a ComfyUI Z-Image file (prefix dropped, ``qkv`` split in three equal
    parts: Z-Image's keys and values have as many heads as its queries). A file with prefixed keys keeps only
    those (an all-in-one checkpoint's autoencoder and text encoder are set aside, as ComfyUI's loader does)."""
    state = strip_comfy_prefix(state)
    out: StateDict = {}
    unknown = []
    for k, v in state.items():
        if k in UNUSED:
            continue
        if k.startswith(("x_embedder.", "final_layer.")):
            group, rest = k.split(".", 1)
            out[f"all_{group}.{patch_key(patch_size)}.{rest}"] = v
        elif k.startswith(_GLOBAL):
            out[k] = v
        elif (m := _BLOCK.match(k)) is None:
            unknown.append(k)
        elif m.group(3) == "attention.qkv.weight":
            head = k[: -len("qkv.weight")]
            out[head + "to_q.weight"], out[head + "to_k.weight"], out[head + "to_v.weight"] = v.chunk(3, 0)
        else:
            out[f"{m.group(1)}.{m.group(2)}.{_COMFY_BLOCK.get(m.group(3), m.group(3))}"] = v
    if unknown:
        check_keys(set(), set(unknown), "ComfyUI Z-Image (unexpected keys)")
    return out


def diffusers_to_comfy(state: StateDict) -> StateDict:
    """ComfyUI's names (without the ``model.diffusion_model.`` prefix) of a release / diffusers state dict."""
    back = {v: k for k, v in _COMFY_BLOCK.items()}
    out: StateDict = {}
    unknown = []
    for k, v in state.items():
        if k.startswith(("all_x_embedder.", "all_final_layer.")):
            group, _, rest = k.split(".", 2)
            out[f"{group[len('all_') :]}.{rest}"] = v
        elif k.startswith(_GLOBAL):
            out[k] = v
        elif (m := _BLOCK.match(k)) is None:
            unknown.append(k)
        elif m.group(3) in ("attention.to_k.weight", "attention.to_v.weight"):
            continue
        elif m.group(3) == "attention.to_q.weight":
            head = k[: -len("to_q.weight")]
            out[head + "qkv.weight"] = torch.cat([state[head + f"to_{p}.weight"] for p in "qkv"], 0)
        else:
            out[f"{m.group(1)}.{m.group(2)}.{back.get(m.group(3), m.group(3))}"] = v
    if unknown:
        check_keys(set(), set(unknown), "diffusers ZImageTransformer2DModel (unexpected keys)")
    return out


def z_image_to_ours(state: StateDict, task: str, patch_size: int, head_dim: int) -> StateDict:
    """Our ``LuminaModel`` state dict (unified family, ``z_image`` variant, image task ``task``) from the
    release / diffusers layout."""
    ours: StateDict = {}
    unknown = []
    head_perm = rope_permutation(head_dim, head_dim)
    p2 = patch_size * patch_size
    for k, v in state.items():
        m = _BLOCK.match(k)
        if m is None:
            if k.startswith("all_x_embedder."):
                name = "x_embedder." + k.rsplit(".", 1)[1]
                readin = readout_permutation(
                    patch_size, state[f"{k.rsplit('.', 1)[0]}.weight"].shape[1] // p2
                )
                ours[f"adapters.{task}.{name}"] = v[:, readin] if name.endswith("weight") else v
            elif k.startswith("all_final_layer."):
                name = "final_layer." + k.split(".", 2)[2]
                if name.startswith("final_layer.linear."):
                    v = v[readout_permutation(patch_size, v.shape[0] // p2)]
                ours[f"adapters.{task}.{name}"] = v
            elif k.startswith(_GLOBAL):
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
            ours[head + ("attention.q_norm.weight" if "norm_q" in name else "attention.k_norm.weight")] = v[
                head_perm
            ]
        elif name == "feed_forward.w1.weight":
            ours[head + "feed_forward.w13.weight"] = torch.cat(
                [v, state[f"{group}.{i}.feed_forward.w3.weight"]], 0
            )
        elif name in _OURS_BLOCK:
            ours[head + _OURS_BLOCK[name]] = v
        else:
            unknown.append(k)
    if unknown:
        check_keys(set(), set(unknown), "diffusers ZImageTransformer2DModel (unexpected keys)")
    ours[f"adapters.{task}.pad_token"] = torch.zeros(
        state["x_pad_token"].shape[-1], dtype=state["x_pad_token"].dtype
    )
    return ours


def ours_to_z_image(state: StateDict, task: str, patch_size: int, head_dim: int) -> StateDict:
    """The release / diffusers layout of our ``z_image`` trunk plus image task ``task`` (other tasks'
    adapters are left out; our task pad token, which the release has not, is dropped)."""
    back = {v: k for k, v in _OURS_BLOCK.items()}
    head_back = torch.argsort(rope_permutation(head_dim, head_dim))
    prefix, p2 = f"adapters.{task}.", patch_size * patch_size
    out: StateDict = {}
    for k, v in state.items():
        if k.startswith(prefix):
            name = k[len(prefix) :]
            if name.startswith("x_embedder."):
                if name.endswith("weight"):
                    v = v[:, torch.argsort(readout_permutation(patch_size, v.shape[1] // p2))]
                out[f"all_x_embedder.{patch_key(patch_size)}.{name.split('.', 1)[1]}"] = v
            elif name.startswith("final_layer."):
                if name.startswith("final_layer.linear."):
                    v = v[torch.argsort(readout_permutation(patch_size, v.shape[0] // p2))]
                out[f"all_final_layer.{patch_key(patch_size)}.{name.split('.', 1)[1]}"] = v
            elif name != "pad_token":
                raise ValueError(f"the Z-Image layout has no place for {k!r}")
            continue
        if not k.startswith("trunk."):
            continue
        name = k[len("trunk.") :]
        if (m := _BLOCK.match(name)) is None:
            out[name] = v
            continue
        group, i, part = m.groups()
        head = f"{group}.{i}."
        if part == "attention.wqkv.weight":
            q, kk, vv = v.chunk(3, 0)  # as many key / value heads as query heads
            out[head + "attention.to_q.weight"] = q[torch.argsort(rope_permutation(q.shape[0], head_dim))]
            out[head + "attention.to_k.weight"] = kk[torch.argsort(rope_permutation(kk.shape[0], head_dim))]
            out[head + "attention.to_v.weight"] = vv
        elif part in ("attention.q_norm.weight", "attention.k_norm.weight"):
            out[
                head
                + ("attention.norm_q.weight" if part.startswith("attention.q") else "attention.norm_k.weight")
            ] = v[head_back]
        elif part == "feed_forward.w13.weight":
            out[head + "feed_forward.w1.weight"], out[head + "feed_forward.w3.weight"] = v.chunk(2, 0)
        elif part in back:
            out[head + back[part]] = v
        else:
            raise ValueError(f"the Z-Image layout has no place for {k!r}")
    return out

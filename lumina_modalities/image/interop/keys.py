"""Key maps between the three public layouts of the same network.

* ours: :class:`~lumina_core.model.LuminaModel` with the image task ``task`` (fused ``wqkv``, ``wkv_y``,
  ``w13``; final-layer rows in (C, ph, pw) order, the same order as the input tokens; within each head the
  query/key channels in "halves" order, RoPE pair j = channels (j, j + d/2), see ``rope_permutation``);
* released: ``consolidated*.pth`` / ``.safetensors`` of Lumina-Next (``layers.N.attention.wq.weight``...;
  final-layer rows in (ph, pw, C) order; RoPE pair j = channels (2j, 2j + 1) of a head);
* diffusers: ``LuminaNextDiT2DModel`` (the query projection and its norm duplicated into ``attn1`` and
  ``attn2``; otherwise a renaming of the released keys).

A model with a separate cross-attention query (``NextDiTConfig.separate_cross_query``: diffusers'
``attn2.to_q`` / ``attn2.norm_q`` differ from ``attn1``'s) has three more per-layer tensors, which the released
checkpoints never hold; in the released layout they are named ``attention.wq_y.weight`` and
``attention.q_y_norm.{weight,bias}`` (an extension: the released code cannot run such a model).

LoRA factors (``A`` (r, in), ``B`` (out, r) with ``W' = W + s B A``) map with the weights they modify: a fused
weight's ``B`` is split into the row blocks of its parts (each part keeps the shared ``A``: exact), and the
rows of query/key ``B`` factors are permuted like the weight rows (:func:`lora_to_released`).

All conversions go through the released layout. Every function raises ValueError listing the missing and
unexpected keys rather than loading a partial model.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from lumina_core.interop.formats import check_keys as _check_keys

StateDict = dict[str, Tensor]

#: buffers some released checkpoints carry that are not parameters (recomputed by us)
IGNORED_RELEASED_KEYS = re.compile(r"^(freqs_cis|.*\.freqs_cis)$")

# released name -> diffusers name (per-layer entries use {i})
_RELEASED_TO_DIFFUSERS_GLOBAL = {
    "pad_token": "pad_token",
    "x_embedder.weight": "patch_embedder.proj.weight",
    "x_embedder.bias": "patch_embedder.proj.bias",
    "t_embedder.mlp.0.weight": "time_caption_embed.timestep_embedder.linear_1.weight",
    "t_embedder.mlp.0.bias": "time_caption_embed.timestep_embedder.linear_1.bias",
    "t_embedder.mlp.2.weight": "time_caption_embed.timestep_embedder.linear_2.weight",
    "t_embedder.mlp.2.bias": "time_caption_embed.timestep_embedder.linear_2.bias",
    "cap_embedder.0.weight": "time_caption_embed.caption_embedder.0.weight",
    "cap_embedder.0.bias": "time_caption_embed.caption_embedder.0.bias",
    "cap_embedder.1.weight": "time_caption_embed.caption_embedder.1.weight",
    "cap_embedder.1.bias": "time_caption_embed.caption_embedder.1.bias",
    "final_layer.adaLN_modulation.1.weight": "norm_out.linear_1.weight",
    "final_layer.adaLN_modulation.1.bias": "norm_out.linear_1.bias",
    "final_layer.linear.weight": "norm_out.linear_2.weight",
    "final_layer.linear.bias": "norm_out.linear_2.bias",
}
_RELEASED_TO_DIFFUSERS_LAYER = {
    "attention.gate": "gate",
    "attention.wq.weight": "attn1.to_q.weight",
    "attention.wk.weight": "attn1.to_k.weight",
    "attention.wv.weight": "attn1.to_v.weight",
    "attention.wk_y.weight": "attn2.to_k.weight",
    "attention.wv_y.weight": "attn2.to_v.weight",
    "attention.wo.weight": "attn2.to_out.0.weight",
    "attention.q_norm.weight": "attn1.norm_q.weight",
    "attention.q_norm.bias": "attn1.norm_q.bias",
    "attention.k_norm.weight": "attn1.norm_k.weight",
    "attention.k_norm.bias": "attn1.norm_k.bias",
    "attention.ky_norm.weight": "attn2.norm_k.weight",
    "attention.ky_norm.bias": "attn2.norm_k.bias",
    "attention_norm1.weight": "norm1.norm.weight",
    "adaLN_modulation.1.weight": "norm1.linear.weight",
    "adaLN_modulation.1.bias": "norm1.linear.bias",
    "attention_norm2.weight": "norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "attention_y_norm.weight": "norm1_context.weight",
    "feed_forward.w1.weight": "feed_forward.linear_1.weight",
    "feed_forward.w2.weight": "feed_forward.linear_2.weight",
    "feed_forward.w3.weight": "feed_forward.linear_3.weight",
}
#: diffusers keys that duplicate a released tensor: (diffusers duplicate, diffusers original)
_DIFFUSERS_DUPLICATES = {
    "attn2.to_q.weight": "attn1.to_q.weight",
    "attn2.norm_q.weight": "attn1.norm_q.weight",
    "attn2.norm_q.bias": "attn1.norm_q.bias",
}
#: with a separate cross-attention query, the released-layout names (an extension) of diffusers' attn2 copies
_SEPARATE_QUERY = {
    "attention.wq_y.weight": "attn2.to_q.weight",
    "attention.q_y_norm.weight": "attn2.norm_q.weight",
    "attention.q_y_norm.bias": "attn2.norm_q.bias",
}

# released per-layer name -> our per-layer name, for the names that are a pure renaming
_RELEASED_TO_OURS_LAYER = {
    "attention.gate": "attention.gate",
    "attention.wo.weight": "attention.wo.weight",
    "attention.q_norm.weight": "attention.q_norm.weight",
    "attention.q_norm.bias": "attention.q_norm.bias",
    "attention.k_norm.weight": "attention.k_norm.weight",
    "attention.k_norm.bias": "attention.k_norm.bias",
    "attention.ky_norm.weight": "attention.ky_norm.weight",
    "attention.ky_norm.bias": "attention.ky_norm.bias",
    "attention_norm1.weight": "attention_norm1.weight",
    "attention_norm2.weight": "attention_norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "attention_y_norm.weight": "attention_y_norm.weight",
    "attention.wq_y.weight": "attention.wq_y.weight",
    "attention.q_y_norm.weight": "attention.q_y_norm.weight",
    "attention.q_y_norm.bias": "attention.q_y_norm.bias",
    "adaLN_modulation.1.weight": "adaLN_modulation.1.weight",
    "adaLN_modulation.1.bias": "adaLN_modulation.1.bias",
    "feed_forward.w2.weight": "feed_forward.w2.weight",
}
# released per-layer names that are concatenated into one of ours: ours <- [released parts] (row-wise)
_FUSED_LAYER = {
    "attention.wqkv.weight": ("attention.wq.weight", "attention.wk.weight", "attention.wv.weight"),
    "attention.wkv_y.weight": ("attention.wk_y.weight", "attention.wv_y.weight"),
    "feed_forward.w13.weight": ("feed_forward.w1.weight", "feed_forward.w3.weight"),
}
_RELEASED_TO_OURS_GLOBAL = {
    "t_embedder.mlp.0.weight": "trunk.t_embedder.mlp.0.weight",
    "t_embedder.mlp.0.bias": "trunk.t_embedder.mlp.0.bias",
    "t_embedder.mlp.2.weight": "trunk.t_embedder.mlp.2.weight",
    "t_embedder.mlp.2.bias": "trunk.t_embedder.mlp.2.bias",
    "cap_embedder.0.weight": "trunk.cap_embedder.net.0.weight",
    "cap_embedder.0.bias": "trunk.cap_embedder.net.0.bias",
    "cap_embedder.1.weight": "trunk.cap_embedder.net.1.weight",
    "cap_embedder.1.bias": "trunk.cap_embedder.net.1.bias",
}
_RELEASED_TO_OURS_ADAPTER = {
    "pad_token": "pad_token",
    "x_embedder.weight": "x_embedder.weight",
    "x_embedder.bias": "x_embedder.bias",
    "final_layer.adaLN_modulation.1.weight": "final_layer.adaLN_modulation.1.weight",
    "final_layer.adaLN_modulation.1.bias": "final_layer.adaLN_modulation.1.bias",
    "final_layer.linear.weight": "final_layer.linear.weight",
    "final_layer.linear.bias": "final_layer.linear.bias",
}

_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")


def num_layers(state: StateDict) -> int:
    ids = {int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))}
    if ids and ids != set(range(max(ids) + 1)):
        raise ValueError(f"layer indices must run 0..N-1; got {sorted(ids)}")
    return len(ids)


# -- released <-> diffusers -------------------------------------------------------------------------------
def released_keys(
    n_layers: int, has_context: bool, qk_norm: bool = True, separate_cross_query: bool = False
) -> set[str]:
    """Every key a released checkpoint of this shape holds (plus the separate cross-attention query's)."""
    keys = set(_RELEASED_TO_DIFFUSERS_GLOBAL)
    layer = set(_RELEASED_TO_DIFFUSERS_LAYER)
    if separate_cross_query and has_context:
        layer |= set(_SEPARATE_QUERY)
    if not qk_norm:
        layer = {k for k in layer if "_norm." not in k or k.startswith(("attention_", "ffn_"))}
    if not has_context:
        keys -= {k for k in keys if k.startswith("cap_embedder")}
        layer -= {"attention.gate", "attention.wk_y.weight", "attention.wv_y.weight", "attention.ky_norm.weight",
                  "attention.ky_norm.bias", "attention_y_norm.weight"}
    return keys | {f"layers.{i}.{k}" for i in range(n_layers) for k in layer}


def diffusers_to_released(
    state: StateDict, atol: float = 0.0, separate_cross_query: bool | None = None
) -> StateDict:
    """Released-layout state dict from a diffusers ``LuminaNextDiT2DModel`` state dict.

    diffusers stores the query projection (and its norm) twice, for ``attn1`` and ``attn2``. When the copies
    agree (within ``atol``) the network has one query shared by self- and cross-attention (the released
    model); when they differ (fine-tuned in diffusers, or freshly initialised) the ``attn2`` copies become the
    separate cross-attention query (``attention.wq_y.weight``, ``attention.q_y_norm.*``).
    ``separate_cross_query``: None decides from the tensors; False refuses copies that differ; True keeps
    them separate even when they agree.
    """
    state = dict(state)
    n = num_layers(state)
    inverse = {v: k for k, v in _RELEASED_TO_DIFFUSERS_GLOBAL.items()}
    inverse.update({f"layers.{i}.{v}": f"layers.{i}.{k}" for i in range(n) for k, v in _RELEASED_TO_DIFFUSERS_LAYER.items()})
    if n and f"layers.0.{_RELEASED_TO_DIFFUSERS_LAYER['attention.q_norm.weight']}" not in state:  # qk_norm=False
        inverse = {k: v for k, v in inverse.items() if ".norm_q." not in k and ".norm_k." not in k}
    dup = {f"layers.{i}.{d}": f"layers.{i}.{o}" for i in range(n) for d, o in _DIFFUSERS_DUPLICATES.items()}
    dup = {d: o for d, o in dup.items() if o in inverse}
    _check_keys(set(state), set(inverse) | set(dup), "diffusers LuminaNextDiT2DModel")
    differ = [d for d, o in dup.items() if state[d].shape != state[o].shape
              or not torch.allclose(state[d].float(), state[o].float(), atol=atol, rtol=0)]
    if separate_cross_query is None:
        separate_cross_query = bool(differ)
    if differ and not separate_cross_query:
        raise ValueError(
            f"diffusers keys {differ[0]!r} and {dup[differ[0]]!r} must hold the same tensor for a model with one "
            "query projection shared by self- and cross-attention (the released network); they differ. Load it "
            "with a separate cross-attention query (separate_cross_query=True, the default for such models)"
        )
    out = {inverse[k]: v for k, v in state.items() if k in inverse}
    if separate_cross_query:
        to_released = {d: r for r, d in _SEPARATE_QUERY.items()}
        for i in range(n):
            for d, r in to_released.items():
                if f"layers.{i}.{d}" in dup:
                    out[f"layers.{i}.{r}"] = state[f"layers.{i}.{d}"]
    return out


def released_to_diffusers(state: StateDict) -> StateDict:
    n = num_layers(state)
    out = {}
    to_diffusers = {**_RELEASED_TO_DIFFUSERS_LAYER, **_SEPARATE_QUERY}
    for k, v in state.items():
        m = _LAYER_KEY.match(k)
        if m:
            out[f"layers.{m.group(1)}.{to_diffusers[m.group(2)]}"] = v
        else:
            out[_RELEASED_TO_DIFFUSERS_GLOBAL[k]] = v
    for i in range(n):
        for d, o in _DIFFUSERS_DUPLICATES.items():
            if f"layers.{i}.{o}" in out and f"layers.{i}.{d}" not in out:  # shared query: attn2 copies attn1
                out[f"layers.{i}.{d}"] = out[f"layers.{i}.{o}"].clone()
    return out


# -- released <-> ours --------------------------------------------------------------------------------------
def readout_permutation(patch_size: int, out_channels: int) -> Tensor:
    """Index ``perm`` with ``ours[o] = released[perm[o]]`` for final-layer rows.

    Released rows are read out in (ph, pw, C) order, ours in (C, ph, pw) order (the input tokens' order).
    """
    p, c = patch_size, out_channels
    idx = torch.arange(p * p * c).view(p, p, c)  # released row index at (ph, pw, C)
    return idx.permute(2, 0, 1).reshape(-1)  # at (C, ph, pw)


#: per-layer released tensors whose rows (or entries) are query/key channels, rotated by RoPE or dotted with
#: rotated queries: their channels are reordered head by head from (2j, 2j+1) pairs to (j, j + d/2) pairs
_QK_CHANNEL_KEYS = (
    "attention.wq.weight", "attention.wk.weight", "attention.wk_y.weight",
    "attention.q_norm.weight", "attention.q_norm.bias", "attention.k_norm.weight", "attention.k_norm.bias",
    "attention.ky_norm.weight", "attention.ky_norm.bias",
    "attention.wq_y.weight", "attention.q_y_norm.weight", "attention.q_y_norm.bias",
)


def rope_permutation(width: int, head_dim: int) -> Tensor:
    """Index ``perm`` with ``ours[m] = released[perm[m]]`` over ``width`` query/key channels.

    Within each head the released channels (0, 1, 2, 3, ...) are pairs (2j, 2j+1); ours put the pair's
    first members first: (0, 2, 4, ..., 1, 3, 5, ...). QK-norm (over the whole width) and every query-key
    dot product are unchanged when both sides are permuted alike, so this is an exact re-parametrisation.
    """
    if width % head_dim or head_dim % 2:
        raise ValueError(f"query/key width {width} is not a whole number of even heads of {head_dim}")
    one = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    return (torch.arange(width // head_dim)[:, None] * head_dim + one[None]).reshape(-1)


def _permute_qk(state: StateDict, n_layers: int, head_dim: int, inverse: bool) -> StateDict:
    out = dict(state)
    for i in range(n_layers):
        for name in _QK_CHANNEL_KEYS:
            key = f"layers.{i}.{name}"
            if key in out:
                v = out[key]
                perm = rope_permutation(v.shape[0], head_dim)
                if inverse:
                    perm = torch.argsort(perm)
                out[key] = v[perm]
    return out


def released_to_ours(
    state: StateDict, task: str, patch_size: int, has_context: bool, head_dim: int
) -> StateDict:
    """Our LuminaModel state dict (trunk + the adapter of ``task``) from a released-layout state dict."""
    state = {k: v for k, v in state.items() if not IGNORED_RELEASED_KEYS.match(k)}
    n = num_layers(state)
    qk_norm = "layers.0.attention.q_norm.weight" in state
    separate = "layers.0.attention.wq_y.weight" in state
    _check_keys(set(state), released_keys(n, has_context, qk_norm, separate), "released Lumina-Next")
    state = _permute_qk(state, n, head_dim, inverse=False)
    out: StateDict = {}
    for k, v in _RELEASED_TO_OURS_GLOBAL.items():
        if k in state:
            out[v] = state[k]
    for k, v in _RELEASED_TO_OURS_ADAPTER.items():
        out[f"adapters.{task}.{v}"] = state[k]
    for i in range(n):
        for k, v in _RELEASED_TO_OURS_LAYER.items():
            if f"layers.{i}.{k}" in state:
                out[f"trunk.layers.{i}.{v}"] = state[f"layers.{i}.{k}"]
        for ours, parts in _FUSED_LAYER.items():
            if all(f"layers.{i}.{p}" in state for p in parts):
                out[f"trunk.layers.{i}.{ours}"] = torch.cat([state[f"layers.{i}.{p}"] for p in parts], 0)
    w = out[f"adapters.{task}.final_layer.linear.weight"]
    c_out = _out_channels(w.shape[0], patch_size)
    perm = readout_permutation(patch_size, c_out)
    out[f"adapters.{task}.final_layer.linear.weight"] = w[perm]
    out[f"adapters.{task}.final_layer.linear.bias"] = out[f"adapters.{task}.final_layer.linear.bias"][perm]
    return out


def ours_to_released(
    state: StateDict, task: str, patch_size: int, splits: dict[str, tuple[int, ...]], head_dim: int
) -> StateDict:
    """Released-layout state dict from our LuminaModel state dict (trunk + the adapter of ``task``).

    ``splits`` gives the row sizes of each fused weight (``attention.wqkv.weight`` -> (q, k, v) ...).
    """
    out: StateDict = {}
    inv_global = {v: k for k, v in _RELEASED_TO_OURS_GLOBAL.items()}
    inv_layer = {v: k for k, v in _RELEASED_TO_OURS_LAYER.items()}
    prefix = f"adapters.{task}."
    inv_adapter = {prefix + v: k for k, v in _RELEASED_TO_OURS_ADAPTER.items()}
    for k, v in state.items():
        if k in inv_global:
            out[inv_global[k]] = v
        elif k in inv_adapter:
            out[inv_adapter[k]] = v
        elif k.startswith("trunk.layers."):
            m = _LAYER_KEY.match(k[len("trunk.") :])
            i, name = m.group(1), m.group(2)
            if name in _FUSED_LAYER:
                for part, chunk in zip(_FUSED_LAYER[name], v.split(list(splits[name]), 0), strict=True):
                    out[f"layers.{i}.{part}"] = chunk.clone()
            else:
                out[f"layers.{i}.{inv_layer[name]}"] = v
        elif k.startswith("adapters."):
            continue  # other tasks' adapters have no place in the released format
        else:
            raise ValueError(f"no released name for our key {k!r}")
    w = out["final_layer.linear.weight"]
    perm = readout_permutation(patch_size, _out_channels(w.shape[0], patch_size))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    out["final_layer.linear.weight"] = w[inv]
    out["final_layer.linear.bias"] = out["final_layer.linear.bias"][inv]
    return _permute_qk(out, num_layers(out), head_dim, inverse=True)


def _out_channels(rows: int, patch_size: int) -> int:
    if rows % (patch_size * patch_size):
        raise ValueError(f"final layer has {rows} rows, not a multiple of patch_size^2 = {patch_size**2}")
    return rows // (patch_size * patch_size)


# -- LoRA factors ---------------------------------------------------------------------------------------------
#: our trunk module (below ``trunk.``) -> its released name, for the modules whose weight is not fused
_LORA_GLOBAL = {v[len("trunk."):-len(".weight")]: k[: -len(".weight")]
                for k, v in _RELEASED_TO_OURS_GLOBAL.items() if k.endswith(".weight")}


def lora_to_released(
    module: str, a: Tensor, b: Tensor, splits: dict[str, tuple[int, ...]], head_dim: int
) -> list[tuple[str, Tensor, Tensor]]:
    """``[(released module, A, B_part), ...]`` for a LoRA on our module ``module`` (a name under
    ``LuminaModel``, e.g. ``trunk.layers.3.attention.wqkv``): the parts of a fused weight share ``A`` and take
    their row blocks of ``B``; query/key rows are permuted back to the released channel order.
    ``splits`` gives each fused weight's row sizes (``attention.wqkv.weight`` -> (q, k, v) ...).
    ValueError for modules without a released counterpart (the adapters: task-specific, not exported)."""
    if not module.startswith("trunk."):
        raise ValueError(
            f"LoRA on {module!r} has no counterpart in the released / diffusers / ComfyUI layouts (only the trunk's "
            "layers are exported; the task adapters are ours); train the LoRA on trunk modules only"
        )
    rest = module[len("trunk."):]
    m = _LAYER_KEY.match(rest)
    if m is None:
        if rest not in _LORA_GLOBAL:
            raise ValueError(f"LoRA on {module!r}: no released name for this module")
        return [(_LORA_GLOBAL[rest], a, b)]
    i, name = m.group(1), m.group(2) + ".weight"
    inverse = {v: k for k, v in _RELEASED_TO_OURS_LAYER.items()}
    if name in _FUSED_LAYER:
        parts = list(zip(_FUSED_LAYER[name], b.split(list(splits[name]), 0), strict=True))
    elif name in inverse:
        parts = [(inverse[name], b)]
    else:
        raise ValueError(f"LoRA on {module!r}: no released name for this module")
    out = []
    for part, b_part in parts:
        if part in _QK_CHANNEL_KEYS:
            b_part = b_part[torch.argsort(rope_permutation(b_part.shape[0], head_dim))]
        out.append((f"layers.{i}.{part[: -len('.weight')]}", a, b_part.contiguous()))
    return out


def released_module_to_diffusers(module: str, separate_cross_query: bool) -> list[str]:
    """diffusers module names computing a released module (the shared query: both ``attn1.to_q`` and
    ``attn2.to_q``)."""
    m = _LAYER_KEY.match(module)
    if m is None:
        return [_RELEASED_TO_DIFFUSERS_GLOBAL[module + ".weight"][: -len(".weight")]]
    i, name = m.group(1), m.group(2) + ".weight"
    to_diffusers = {**_RELEASED_TO_DIFFUSERS_LAYER, **_SEPARATE_QUERY}
    names = [to_diffusers[name]]
    if not separate_cross_query:
        names += [d for d, o in _DIFFUSERS_DUPLICATES.items() if o == names[0]]
    return [f"layers.{i}.{n[: -len('.weight')]}" for n in names]

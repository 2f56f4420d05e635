"""LoRA factors of the ``unified`` trunk family (Lumina-Image 2.0, Z-Image) over the public module names.

A factor pair on our module ``m`` is the update ``W_m' = W_m + s B A`` (``A`` (r, in), ``B`` (out, r),
``s = alpha / r``). Our projections are fused: ``attention.wqkv`` is the row stack ``[Wq; Wk; Wv]`` (query and key
channels of each head in our RoPE-pair order, see :func:`.keys.rope_permutation`), ``feed_forward.w13`` is
``[W1; W3]``. A public layout names each module either fused as we do or per part; per part, the update of part
``P`` is ``s B_P A`` with ``B_P`` the part's row block of ``B`` (the parts share ``A``), so every map is exact.
Query/key rows of ``B`` go back to the public channel order (pairs (2j, 2j + 1) of each head).

Two layouts, each for both variants (``lumina2``, ``z_image``), per block ``{context_refiner, noise_refiner,
layers}.N.``:

========================  ==============================  ============================  ============================
ours                      ``comfy`` (ComfyUI's NextDiT,   ``diffusers`` lumina2         ``diffusers`` z_image
                          kohya sd-scripts)               (Lumina2Transformer2DModel)   (ZImageTransformer2DModel)
========================  ==============================  ============================  ============================
``attention.wqkv``        ``attention.qkv`` (fused)       ``attn.to_q/to_k/to_v``       ``attention.to_q/to_k/to_v``
``attention.wo``          ``attention.out``               ``attn.to_out.0``             ``attention.to_out.0``
``feed_forward.w13``      ``feed_forward.w1``, ``w3``     ``feed_forward.linear_1/3``   ``feed_forward.w1/w3``
``feed_forward.w2``       ``feed_forward.w2``             ``feed_forward.linear_2``     ``feed_forward.w2``
``adaLN_modulation.1``    ``adaLN_modulation.1`` (z: .0)  ``norm1.linear``              ``adaLN_modulation.0``
``t_embedder.mlp.0/2``    ``t_embedder.mlp.0/2``          ``time_caption_embed.``       ``t_embedder.mlp.0/2``
                                                          ``timestep_embedder.linear_1/2``
``cap_embedder.1``        ``cap_embedder.1``              ``time_caption_embed.``       ``cap_embedder.1``
                                                          ``caption_embedder.1``
========================  ==============================  ============================  ============================

The ``comfy`` names are the original release's (Lumina-Image 2.0's ``consolidated*.pth``, whose module tree
ComfyUI's ``comfy/ldm/lumina/model.py`` and kohya's ``library/lumina_models.py`` reproduce; ComfyUI runs Z-Image
on the same class, whose blocks' modulation is ``adaLN_modulation.0`` there). The task adapter's modules (patch
embedder, final layer) are ours per task and are not exported.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from lumina_core.model.config import NextDiTConfig

from .keys import rope_permutation

Parts = list[tuple[str, Tensor, Tensor]]  # [(public module, A, B_part)]

_BLOCK = re.compile(r"^(context_refiner|noise_refiner|layers)\.(\d+)\.(.+)$")
#: per-block module -> its public parts, per layout; a fused module lists its parts in row order
_BLOCK_PARTS = {
    "comfy": {
        "attention.wqkv": ("attention.qkv",),
        "attention.wo": ("attention.out",),
        "feed_forward.w13": ("feed_forward.w1", "feed_forward.w3"),
        "feed_forward.w2": ("feed_forward.w2",),
    },
    "diffusers/lumina2": {
        "attention.wqkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "attention.wo": ("attn.to_out.0",),
        "feed_forward.w13": ("feed_forward.linear_1", "feed_forward.linear_3"),
        "feed_forward.w2": ("feed_forward.linear_2",),
        "adaLN_modulation.1": ("norm1.linear",),
    },
    "diffusers/z_image": {
        "attention.wqkv": ("attention.to_q", "attention.to_k", "attention.to_v"),
        "attention.wo": ("attention.to_out.0",),
        "feed_forward.w13": ("feed_forward.w1", "feed_forward.w3"),
        "feed_forward.w2": ("feed_forward.w2",),
        "adaLN_modulation.1": ("adaLN_modulation.0",),
    },
}
_GLOBAL = {
    "comfy": {"t_embedder.mlp.0": "t_embedder.mlp.0", "t_embedder.mlp.2": "t_embedder.mlp.2",
              "cap_embedder.1": "cap_embedder.1"},
    "diffusers/lumina2": {
        "t_embedder.mlp.0": "time_caption_embed.timestep_embedder.linear_1",
        "t_embedder.mlp.2": "time_caption_embed.timestep_embedder.linear_2",
        "cap_embedder.1": "time_caption_embed.caption_embedder.1",
    },
    "diffusers/z_image": {"t_embedder.mlp.0": "t_embedder.mlp.0", "t_embedder.mlp.2": "t_embedder.mlp.2",
                          "cap_embedder.1": "cap_embedder.1"},
}  # fmt: skip
LAYOUTS = ("comfy", "diffusers")


def _layout_key(layout: str, cfg: NextDiTConfig) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown unified LoRA layout {layout!r}; known: {LAYOUTS}")
    return layout if layout == "comfy" else f"diffusers/{cfg.unified_variant}"


def _qk_back(b: Tensor, head_dim: int) -> Tensor:
    """Query/key rows of ``B`` from our RoPE-pair order back to the public (2j, 2j + 1) order."""
    return b[torch.argsort(rope_permutation(b.shape[0], head_dim))]


def _row_blocks(module: str, b: Tensor, cfg: NextDiTConfig) -> list[Tensor]:
    """``B``'s rows split like the fused weight's parts, query/key rows in public order, for the comfy layout's
    fused ``qkv`` too (its rows are the concatenation of the per-part blocks)."""
    if module == "attention.wqkv":
        q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        bq, bk, bv = b.split([q, kv, kv], 0)
        return [_qk_back(bq, cfg.head_dim), _qk_back(bk, cfg.head_dim), bv]
    if module == "feed_forward.w13":
        return list(b.chunk(2, 0))
    return [b]


def unified_lora_parts(module: str, a: Tensor, b: Tensor, cfg: NextDiTConfig, layout: str) -> Parts:
    """``[(public module, A, B_part), ...]`` of the factors on our module ``module`` (a name under
    ``LuminaModel``: ``trunk.layers.3.attention.wqkv``) in ``layout`` (``comfy`` or ``diffusers``, the variant
    from ``cfg``). ValueError for a module with no public counterpart (the task adapters, a norm)."""
    if cfg.family != "unified":
        raise ValueError(
            f"unified_lora_parts maps the unified family's modules; this trunk is {cfg.family!r}"
        )
    key = _layout_key(layout, cfg)
    if not module.startswith("trunk."):
        raise ValueError(
            f"LoRA on {module!r} has no counterpart in Lumina-Image 2.0 / Z-Image (only the trunk's modules are "
            "exported; the task adapters are ours): train the LoRA on trunk modules only (the default targets)"
        )
    rest = module[len("trunk.") :]
    m = _BLOCK.match(rest)
    if m is None:
        if rest not in _GLOBAL[key]:
            raise ValueError(f"LoRA on {module!r}: no module of that name in the public {layout} layout")
        return [(_GLOBAL[key][rest], a, b)]
    group, i, name = m.groups()
    table = dict(_BLOCK_PARTS[key])
    if key == "comfy":
        table["adaLN_modulation.1"] = (
            "adaLN_modulation.0" if cfg.unified_variant == "z_image" else "adaLN_modulation.1",
        )
    if name not in table:
        raise ValueError(f"LoRA on {module!r}: no module of that name in the public {layout} layout")
    blocks = _row_blocks(name, b, cfg)
    if len(table[name]) == 1:  # one public module: the (re-ordered) rows stacked back
        blocks = [torch.cat(blocks, 0)]
    return [(f"{group}.{i}.{part}", a, bp.contiguous()) for part, bp in zip(table[name], blocks, strict=True)]


def kohya_name(module: str) -> str:
    """kohya's LoRA name of a public module: ``lora_unet_`` + the module path with dots as underscores."""
    return "lora_unet_" + module.replace(".", "_")

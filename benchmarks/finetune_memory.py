"""Expected GPU memory of fine-tuning the 2B model (recipes/image/finetune_folder*.yaml), Lumina-Image 2.0
(``--preset lumina2``: recipes/image/lumina2_lora.yaml) or Z-Image (``--preset z_image``:
recipes/image/z_image_lora.yaml), counted, not measured.

    .venv/bin/python benchmarks/finetune_memory.py [--preset 2B] [--batch 1] [--size 1024] [--rank 32] [--caption 256]

Everything is counted on PyTorch's meta device (shapes and dtypes, no values, no compute), so it runs on any
machine in seconds:

* parameters, LoRA factors (peft on the recipe's targets): exact counts of the real modules;
* activations: one real forward of the real model in bf16 on meta tensors under
  ``torch.autograd.graph.saved_tensors_hooks``, summing the distinct storages autograd keeps for the backward
  pass (weights excluded). Attention is counted as a GPU's fused (flash / memory-efficient) kernel keeps it -
  q, k, v, the output and a float32 log-sum-exp per query - not the (L x L) probability matrix the meta / CPU
  fallback saves, which such kernels never form;
* Lumina-Image 2.0 (the unified family): its trunk removes caption padding with a data-dependent length, which
  meta tensors cannot answer, so each block stack is counted by a real forward of one of its blocks on meta
  tensors of its sequence - the context refiner on the caption (256 tokens), the noise refiner on the image
  tokens, the joint layers on caption + image tokens - times the stack's depth; the embedders and the final
  layer (a few (B, L, dim) tensors, under 0.1 GiB at 1024 px) are not counted;
* with activation checkpointing each block keeps only its inputs; one block's activations are rebuilt at a
  time in the backward pass (plus that block's gradient buffers, of the same order);
* optimiser states: AdamW 2 x fp32 per trained value, bitsandbytes' block-wise 8-bit AdamW 2 x 1 byte plus an
  fp32 scale per 2048-value block (measured by nobody here: the library's documented layout).

Not counted: the CUDA context and allocator slack (typically 0.5-1.5 GB), the frozen autoencoder and text
encoder (neither is on the GPU during training once their outputs are on disk: the latent and caption caches;
the text encoder is loaded lazily only for captions not yet cached), temporary buffers of single kernels.
Prints a table; the figures in docs/lora.md came from this command with its defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1024**3


def build(size: int, rank: int | None, preset: str = "2B"):
    """The 2B model as the fine-tuning recipes build it (or Lumina-Image 2.0 as recipes/image/lumina2_lora.yaml
    does), on the meta device, in bf16 (LoRA injected if rank)."""
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_core.plugin import AdapterSpec

    grid = size // 16  # autoencoder factor 8 (SDXL's, FLUX's), patch 2
    # lumina2: FLUX's 16 latent channels, 2 x 2 patches in and out; Gemma-2-2B's 2304-wide captions
    # z_image: the same latents; Qwen3-4B's 2560-wide captions
    if preset in ("lumina2", "z_image"):
        spec = AdapterSpec(in_dim=64, out_dim=64, num_axes=2, axis_split=(1, 1), train_extent=(grid, grid),
                           rope_layout="blocked")  # fmt: skip
        if preset == "lumina2":
            cfg, width = NextDiTConfig.from_preset("lumina2", qk_norm_eps=1e-5), 2304
        else:
            cfg, width = NextDiTConfig.from_preset("z_image"), 2560
    else:
        spec = AdapterSpec(in_dim=16, out_dim=32, num_axes=2, axis_split=(1, 1), train_extent=(grid, grid))
        cfg, width = NextDiTConfig.from_preset("2B"), 2048
    with torch.device("meta"):
        model = LuminaModel(cfg, {"t2i": spec}, {"t2i": width}).to(torch.bfloat16)
    if rank:
        from lumina_core.finetune.lora import LoraSettings, apply_lora
        from lumina_core.finetune.settings import resolved_targets

        # as the LoRA recipes train: the default targets with train.lora.adapt_conditioning, the factors only
        targets = resolved_targets(None, True)
        apply_lora(model, LoraSettings(rank=rank, alpha=float(rank), targets=targets, train_also=[]))
    return model, grid


def saved_activation_bytes(model, grid: int, batch: int, caption: int) -> tuple[int, int]:
    """(bytes autograd keeps for one training forward, of which the largest block's), meta tensors, bf16."""
    from lumina_core.tokens import Condition, TokenBatch
    from lumina_modalities.image.patches import grid_positions

    n = grid * grid
    dev, bf = "meta", torch.bfloat16
    tokens = torch.zeros(batch, n, 16, device=dev, dtype=bf)
    pos = grid_positions(grid, grid).expand(batch, n, 2).to(dev)
    mask = torch.ones(batch, n, dtype=torch.bool, device=dev)
    tb = TokenBatch(tokens, pos, mask, [(grid, grid)] * batch)
    cond = Condition(torch.zeros(batch, caption, 2048, device=dev, dtype=bf),
                     torch.ones(batch, caption, dtype=torch.bool, device=dev))  # fmt: skip
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}
    per_block: list[int] = []
    heads = model.config.n_heads

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key in weights or key in seen:
            return t
        nbytes = t.untyped_storage().nbytes()
        if t.dim() >= 2 and t.shape[-1] == t.shape[-2] == n:  # (.., L, L) attention probabilities: a fused
            nbytes = batch * heads * n * 4  # kernel keeps a float32 log-sum-exp per query instead
        elif t.dim() >= 2 and t.shape[-2:] == (n, caption):
            nbytes = batch * heads * n * 4
        seen[key] = nbytes
        if per_block:
            per_block[-1] += nbytes
        return t

    # meta tensors hold no values: the masks' "all valid?" test (every mask here is all True) is answered for them
    import lumina_core.model.adapter as adapter_module
    import lumina_core.model.context as context_module
    import lumina_core.model.nextdit as nextdit_module

    shimmed = (adapter_module, context_module, nextdit_module)
    originals = [module.all_true for module in shimmed]
    for module, original in zip(shimmed, originals, strict=True):
        module.all_true = lambda m, original=original: True if m.is_meta else original(m)
    hooks = [layer.register_forward_pre_hook(lambda *_: per_block.append(0)) for layer in model.trunk.layers]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(tb, torch.full((batch,), 0.5, device=dev), cond, task="t2i")
    finally:
        for h in hooks:
            h.remove()
        for module, original in zip(shimmed, originals, strict=True):  # the process keeps the real test
            module.all_true = original
    return sum(seen.values()), max(per_block)


def unified_activation_bytes(model, grid: int, batch: int, caption: int) -> tuple[int, int, list[int]]:
    """(bytes autograd keeps for one training forward of the unified trunk's blocks, the largest block's, the
    length of each block's sequence): one real block forward per stack on meta tensors (bf16), times its depth."""
    from lumina_core.model.context import ForwardContext

    cfg, trunk = model.config, model.trunk
    n, dev, bf = grid * grid, "meta", torch.bfloat16
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    c = torch.zeros(batch, cfg.cond_dim, device=dev, dtype=bf)
    total, largest, lengths = 0, 0, []
    for blocks, length, modulated in ((trunk.context_refiner, caption, False), (trunk.noise_refiner, n, True),
                                      (trunk.layers, caption + n, True)):  # fmt: skip
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor, seen=seen, length=length) -> torch.Tensor:
            key = t.untyped_storage()._cdata
            if key in weights or key in seen:
                return t
            nbytes = t.untyped_storage().nbytes()
            # (.., L, L) probabilities: a fused kernel keeps a float32 log-sum-exp per query instead
            if t.dim() >= 2 and t.shape[-1] == t.shape[-2] == length:
                nbytes = batch * cfg.n_heads * length * 4
            seen[key] = nbytes
            return t

        half = cfg.head_dim // 2
        stream = ForwardContext(None, torch.zeros(batch, length, half, device=dev), torch.zeros(batch, length, half, device=dev),
                        None, c if modulated else None)  # fmt: skip
        x = torch.zeros(batch, length, cfg.dim, device=dev, dtype=bf, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            blocks[0](x, stream)
        per_block = sum(seen.values())
        total += per_block * len(blocks)
        largest = max(largest, per_block)
        lengths += [length] * len(blocks)
    return total, largest, lengths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1, help="images per step")
    ap.add_argument(
        "--size", type=int, default=1024, help="image side in pixels (1024: 64 x 64 = 4096 tokens)"
    )
    ap.add_argument("--rank", type=int, default=32, help="LoRA rank (the LoRA recipe's)")
    ap.add_argument("--caption", type=int, default=256, help="caption tokens (the recipe's max_length)")
    ap.add_argument(
        "--preset",
        choices=("2B", "lumina2", "z_image"),
        default="2B",
        help="2B: Lumina-Next 2B (finetune_folder*.yaml); lumina2: Lumina-Image 2.0 (lumina2_lora.yaml); "
        "z_image: Z-Image (z_image_lora.yaml)",
    )
    args = ap.parse_args(argv)
    if args.size % 16 or args.batch < 1 or args.rank < 1:
        raise SystemExit("--size must be a multiple of 16; --batch and --rank at least 1")

    torch.set_num_threads(1)
    full, grid = build(args.size, None, args.preset)
    n_params = sum(p.numel() for p in full.parameters())
    if args.preset in ("lumina2", "z_image"):
        acts, block, lengths = unified_activation_bytes(full, grid, args.batch, args.caption)
    else:
        acts, block = saved_activation_bytes(full, grid, args.batch, args.caption)
        lengths = [grid * grid] * len(full.trunk.layers)
    lora, _ = build(args.size, args.rank, args.preset)
    n_lora = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    layers = len(lengths)  # blocks (the unified trunk's refiners included)
    block_inputs = sum(args.batch * n * full.config.dim * 2 for n in lengths)  # bf16 (B, L, D) per block
    ckpt_acts = block_inputs + 2 * block  # one block rebuilt + its gradient buffers of the same order

    def adam(n: int, eight: bool) -> float:
        return n * (2 + 4 / 2048 * 2) if eight else n * 8

    per_layer = n_params / layers

    def expected(lora_run: bool, eight: bool, ck: bool) -> float:
        trained = n_lora if lora_run else n_params
        weights = n_params * 4  # bf16-mixed keeps every weight in fp32; autocast multiplies in bf16
        # autocast's bf16 copies of the weights: cached for the whole step when they train (full), else each
        # linear keeps its copy for the backward pass - every block's, or one block's with checkpointing
        casts = n_params * 2 if not lora_run or not ck else per_layer * 2
        grads, ema = trained * 4, trained * 4  # fp32 gradients and the fp32 EMA of what trains
        return weights + casts + grads + ema + adam(trained, eight) + (ckpt_acts if ck else acts)

    rows = []
    for lora_run in (False, True):
        for eight in (False, True):
            for ck in (False, True):
                mode = f"LoRA r={args.rank}" if lora_run else "full"
                rows.append(
                    (mode, "8-bit" if eight else "fp32", "on" if ck else "off", expected(lora_run, eight, ck))
                )
    print(
        f"{args.preset} at {args.size} px ({grid * grid} tokens), batch {args.batch}, caption {args.caption} tokens"
    )
    print(f"parameters {n_params / 1e9:.3f} B; LoRA r={args.rank} factors {n_lora / 1e6:.1f} M")
    print(f"activations kept for backward: {acts / GIB:.2f} GiB without checkpointing "
          f"({block / GIB:.3f} GiB per block), {ckpt_acts / GIB:.2f} GiB with it")  # fmt: skip
    print("| training | AdamW states | checkpointing | expected GiB |")
    print("|---|---|---|---|")
    for mode, states, ck, total in rows:
        print(f"| {mode} | {states} | {ck} | {total / GIB:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

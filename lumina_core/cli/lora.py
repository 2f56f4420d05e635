"""``lumina lora merge | export | info``: LoRA adapter files (:mod:`lumina_core.finetune.lora`).

    lumina lora merge CKPT ADAPTER[:SCALE] [ADAPTER[:SCALE] ...] --out DIR   # W += scale * alpha/r * B A
    lumina lora export ADAPTER --format NAME --out DIR_OR_FILE               # a registered LoRA_FORMATS name
                                                   # (image plugin: diffusers, comfyui, kohya)
    lumina lora info ADAPTER

Parsing only at import (``lumina --help`` stays fast); the handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse

from lumina_core.cli.groups import add_command_group


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lora`` and its sub-commands on the ``lumina`` sub-parsers."""
    lsub = add_command_group(
        sub,
        "lora",
        help="merge LoRA adapters into a checkpoint, or export them for diffusers / ComfyUI / kohya",
        description="LoRA adapter files (what a recipe with train.lora writes): merge into base weights, export "
        "to the diffusers, ComfyUI or kohya LoRA formats, or show what one holds.",
    )
    q = lsub.add_parser(
        "merge",
        help="fold adapters into a checkpoint's weights (W += scale * alpha/r * B A)",
        description="Fold one or more LoRA adapters, each with its own scale, into a base checkpoint's weights "
        "(model and EMA); writes a checkpoint that samples without the adapters.",
    )
    q.add_argument(
        "base",
        metavar="CKPT",
        help="base checkpoint: a checkpoint folder, a run folder, or a converted folder",
    )
    q.add_argument(
        "adapters",
        nargs="+",
        metavar="ADAPTER[:SCALE]",
        help="adapter .safetensors files (scale 1 if omitted)",
    )
    q.add_argument(
        "--out", required=True, metavar="DIR", help="where the merged checkpoint goes (must not exist)"
    )
    q.set_defaults(handler=run)
    q = lsub.add_parser(
        "export",
        help="write an adapter in another program's LoRA format (e.g. diffusers, comfyui, kohya)",
        description="Write an adapter in a LoRA format a plugin registers (`lumina plugins list` shows them; "
        "the image plugin: diffusers = peft keys under 'transformer.' of LuminaNextDiT2DModel, "
        "Lumina2Transformer2DModel or ZImageTransformer2DModel; comfyui = ComfyUI's generic keys "
        "diffusion_model.<released module>.lora_up/lora_down/alpha; kohya = lora_unet_<module> keys of kohya's "
        "Lumina 2 / Z-Image networks).",
    )
    q.add_argument("adapter", metavar="ADAPTER", help="adapter .safetensors file")
    q.add_argument("--format", required=True, metavar="NAME", help="a registered LoRA export format")
    q.add_argument(
        "--out", required=True, metavar="PATH", help="a .safetensors file, or a folder to write it into"
    )
    q.set_defaults(handler=run)
    q = lsub.add_parser("info", help="show an adapter's settings and modules")
    q.add_argument("adapter", metavar="ADAPTER", help="adapter .safetensors file")
    q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``lumina lora ...``."""
    from lumina_core.cli.outputs import check_output_file, check_output_folder

    if args.lora_command == "merge":
        check_output_folder(args.out, "--out")
        out = merge_checkpoint(args.base, args.adapters, args.out)
        print(f"merged {len(args.adapters)} adapter(s) into {out}")
    elif args.lora_command == "export":
        from lumina_core.finetune import export_adapter, lora_export_format

        lora_export_format(args.format)  # an unknown name fails before the adapter is read
        (check_output_file if args.out.endswith(".safetensors") else check_output_folder)(args.out, "--out")
        for out in export_adapter(args.adapter, args.out, args.format):
            print(f"wrote {out}")
    else:
        from lumina_core.finetune import read_adapter

        adapter = read_adapter(args.adapter)
        s = adapter.settings
        n = sum(v.numel() for v in adapter.state.values())
        print(
            f"{args.adapter}: rank {s.rank}, alpha {s.alpha} (scale {s.scale:g}), dropout {s.dropout}, "
            f"{len(adapter.modules)} modules, {n} parameters"
        )
        print("targets: " + ", ".join(s.targets))
        full = sum(v.numel() for v in adapter.diffs.values())
        print(f"trained in full (train_also: {', '.join(s.train_also) or 'none'}): {len(adapter.diffs)} tensors, "
              f"{full} parameters")
        for key, value in sorted(adapter.meta.items()):
            print(f"{key}: {value}")
    return 0


def merge_checkpoint(base: str, adapters: list[str], out: str) -> str:
    """Merge ``adapters`` (``PATH[:SCALE]`` each) into the checkpoint ``base`` and write it to ``out``: a
    training checkpoint gives a checkpoint root (``out/step_N`` and ``out/last``, model and EMA merged, the
    training state copied), a converted folder a converted folder. Returns what to pass as ``--ckpt``."""
    import json
    import shutil
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    from lumina_core.finetune import merge_adapter_into, parse_adapter_arg, read_adapter
    from lumina_core.training import checkpoint as ck

    dst = Path(out)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; give --out a new folder (nothing is overwritten)")
    src = ck.resolve_weights(base)
    parsed = [parse_adapter_arg(a, "adapter") for a in adapters]
    files = [(read_adapter(path), scale) for path, scale in parsed]
    merged_from = [{"adapter": str(path), "scale": scale} for path, scale in parsed]

    def merged(weights: dict, prefix: str) -> dict:
        for adapter, scale in files:
            weights = merge_adapter_into(weights, adapter, scale, prefix)
        return weights

    if ck.is_converted(src):
        weights = merged(load_file(str(src / ck.MODEL_FILE)), "")
        dst.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(dst / ck.MODEL_FILE))
        meta = json.loads((src / ck.CONVERTED_CONFIG).read_text())
        meta["lora_merged"] = merged_from
        (dst / ck.CONVERTED_CONFIG).write_text(json.dumps(meta, indent=2))
        return str(dst)
    weights = merged(ck.load_weights(src, "model"), "model.")
    ema = merged(ck.load_weights(src, "ema"), "model.") if (src / ck.EMA_FILE).is_file() else None
    info = json.loads((src / ck.META_FILE).read_text())
    step = int(info.get("step", 0))
    keep = {k: v for k, v in info.items() if k not in ("files", "step", "time")}
    try:
        ck.save_checkpoint(
            dst,
            step,
            weights,
            ema,
            ck.load_state(src),
            {**keep, "lora_merged": merged_from, "base": str(src)},
            keep=None,
        )
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return str(dst)

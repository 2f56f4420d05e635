"""Recognition at unseen resolutions: our Next-DiT trunk (2-D RoPE and its scalings) vs a timm ViT (learned
absolute position embeddings, resampled to the new grid the way timm does it).

    PYTHONPATH=. python benchmarks/recognition.py                   # digits and shapes, ~10 min on 2 cores
    PYTHONPATH=. python benchmarks/recognition.py --quick           # smoke run: a few steps, small sets
    PYTHONPATH=. python benchmarks/recognition.py --data digits --steps 600 --json out.json

Data (offline, real or with known ground truth): scikit-learn's real handwritten 8x8 digits upsampled
bilinearly (10 classes; 1500 train / 297 held out), and the procedural shapes set labelled by its shape
(``meta.shape``; rendered analytically at every size). Every model trains at ``--train-size`` (32 px, 4x4
patches: an 8x8 grid) and is evaluated on the held-out items rendered at each of ``--sizes``.

Runners, all with the same data order, steps, batch, AdamW + cosine schedule, label smoothing and grad clip:

* ``ours``: ``LuminaModel`` (the image plugin's tokenizer, the framework's ``classification`` objective, mean
  pooling), trained at one resolution, evaluated under every RoPE scaling of ``lumina_core.model.rope`` plus
  proportional attention and PI with an explicit scale ``s = size / train`` in both directions (the
  derived scale of the framework only stretches, ``s >= 1``);
* ``ours any-res``: the same trunk trained with a random resolution per batch (``--anyres-sizes``), as the
  paper's any-resolution fine-tune;
* ``timm ViT``: ``timm.models.VisionTransformer`` (class token, learned absolute position embeddings) of a
  similar parameter count, ``dynamic_img_size=True`` so that timm resamples the position embeddings
  (``resample_abs_pos_embed``, bicubic) to each evaluation grid; and ``timm ViT any-res`` trained like ours.

Accuracies print as one table per data set (rows: runner and scaling; columns: evaluation size).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# -- data ------------------------------------------------------------------------------------------------------
def digits_split(split: str, size: int, limit: int | None = None) -> tuple[Tensor, Tensor]:
    from lumina_modalities.image.digits_labels import LabelledDigitsDataset

    ds = LabelledDigitsDataset(size=size, split=split, channels=1)
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    return torch.stack([it["sample"] for it in items]), torch.tensor([it["condition"] for it in items])


def shapes_split(split: str, size: int, n: int) -> tuple[Tensor, Tensor]:
    from lumina_modalities.image.shapes import SHAPES, ShapesDataset

    ds = ShapesDataset(size=size, length=n, split=split, condition="none")
    items = [ds[i] for i in range(n)]
    y = torch.tensor([list(SHAPES).index(it["meta"]["shape"]) for it in items])
    return torch.stack([it["sample"] for it in items]), y


def dataset(name: str, args) -> dict:
    """Train images at every training size and held-out images at every evaluation size."""
    train_sizes = sorted({args.train_size, *args.anyres_sizes})
    if name == "digits":
        lim = 64 if args.quick else None
        train = {s: digits_split("train", s, lim) for s in train_sizes}
        val = {s: digits_split("val", s, lim) for s in args.sizes}
        classes, channels = 10, 1
    else:
        from lumina_modalities.image.shapes import SHAPES

        n_train, n_val = (64, 32) if args.quick else (args.shapes_train, args.shapes_val)
        train = {s: shapes_split("train", s, n_train) for s in train_sizes}
        val = {s: shapes_split("val", s, n_val) for s in args.sizes}
        classes, channels = len(SHAPES), 3
    return {"train": train, "val": val, "classes": classes, "channels": channels}


# -- models ------------------------------------------------------------------------------------------------------
class Ours(nn.Module):
    """The framework's pieces: image tokenizer -> LuminaModel trunk -> classification head (model.heads)."""

    def __init__(self, classes: int, channels: int, args) -> None:
        super().__init__()
        from lumina_core.model import LuminaModel, NextDiTConfig
        from lumina_core.recognition import Classification
        from lumina_core.training.build import add_objective_heads
        from lumina_modalities.image import ImagePlugin

        self.plugin = ImagePlugin(
            patch_size=args.patch, channels=channels, image_size=args.train_size, fid=False
        )
        cfg = NextDiTConfig.from_dict(
            {"dim": args.dim, "n_layers": args.depth, "n_heads": args.heads, "multiple_of": 32}
        )
        self.model = LuminaModel(cfg, {"cls": self.plugin.adapter_spec()})
        self.objective = Classification(classes, pool="mean", label_smoothing=args.label_smoothing)
        add_objective_heads(self.model, {"cls": self.objective})
        del self.model.adapters["cls"].final_layer  # unused by a classifier: not counted, not trained
        self.rope_scaling = None

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.plugin.tokenize(list(images))
        return self.objective.logits(self.model, "cls", tokens, None, self.rope_scaling)


def timm_vit(classes: int, channels: int, args) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=args.train_size, patch_size=args.patch, in_chans=channels, num_classes=classes,
        embed_dim=args.dim, depth=args.depth, num_heads=args.heads, mlp_ratio=args.timm_mlp_ratio,
        class_token=True, global_pool="token", dynamic_img_size=True,
    )  # fmt: skip


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- training and evaluation ---------------------------------------------------------------------------------
def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(model: nn.Module, data: dict, sizes: Sequence[int], args, seed: int) -> float:
    """``args.steps`` AdamW steps on batches of one size each (a random one of ``sizes`` per batch)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    n = len(data["train"][sizes[0]][1])
    order: list[int] = []
    start = time.perf_counter()
    model.train()
    for step in range(args.steps):
        if len(order) < args.batch:
            order += rng.sample(range(n), n)
        idx, order = order[: args.batch], order[args.batch :]
        size = rng.choice(list(sizes))
        x, y = data["train"][size]
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx], label_smoothing=args.label_smoothing)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
    model.eval()
    return time.perf_counter() - start


@torch.no_grad()
def evaluate(model: Callable[[Tensor], Tensor], val: dict[int, tuple[Tensor, Tensor]], bs: int = 128) -> dict:
    out = {}
    for size, (x, y) in val.items():
        pred = torch.cat([model(x[i : i + bs]).argmax(-1) for i in range(0, len(x), bs)])
        out[size] = float((pred == y).float().mean())
    return out


def rope_variants(train_size: int) -> list[tuple[str, Callable[[int], object]]]:
    """(label, size -> RopeScaling) for every scaling kind the framework has, plus proportional attention
    and PI with an explicit two-way scale. Time-aware kinds run at the classifier's fixed t = 1."""
    from lumina_core.model.rope import RopeScaling

    try:  # registered scalings (plugins may add some); older cores list them in ROPE_KINDS
        from lumina_core.registry import ROPE_SCALINGS

        kinds = ["none", *(k for k in ROPE_SCALINGS.names() if k != "none")]
    except ImportError:
        from lumina_core.model.rope import ROPE_KINDS as kinds
    out: list[tuple[str, Callable[[int], object]]] = [
        (kind, lambda size, k=kind: RopeScaling(kind=k)) for kind in kinds
    ]
    out.append(
        ("none + proportional attention", lambda size: RopeScaling(kind="none", proportional_attention=True))
    )
    out.append(
        ("ntk + proportional attention", lambda size: RopeScaling(kind="ntk", proportional_attention=True))
    )
    out.append(("pi, s = size/train both ways", lambda size: RopeScaling(kind="pi", scale=size / train_size)))
    return out


def run(name: str, args) -> dict:
    data = dataset(name, args)
    k, c = data["classes"], data["channels"]
    rows: dict[str, dict[int, float]] = {}
    info: dict[str, dict] = {}

    torch.manual_seed(args.seed)
    ours = Ours(k, c, args)
    secs = train(ours, data, [args.train_size], args, args.seed)
    info["ours"] = {"params": n_params(ours.model), "train_s": round(secs, 1)}
    for label, make in rope_variants(args.train_size):
        acc = {}
        for size in args.sizes:
            ours.rope_scaling = make(size)
            acc.update(evaluate(ours, {size: data["val"][size]}))
        rows[f"ours, {label}"] = acc
    ours.rope_scaling = None

    torch.manual_seed(args.seed)
    vit = timm_vit(k, c, args)
    secs = train(vit, data, [args.train_size], args, args.seed)
    info["timm ViT"] = {"params": n_params(vit), "train_s": round(secs, 1)}
    rows["timm ViT (pos. embed resampled)"] = evaluate(vit, data["val"])

    if args.anyres_sizes:
        torch.manual_seed(args.seed)
        ours_any = Ours(k, c, args)
        secs = train(ours_any, data, sorted({args.train_size, *args.anyres_sizes}), args, args.seed)
        info["ours any-res"] = {"params": n_params(ours_any.model), "train_s": round(secs, 1)}
        rows["ours any-res, none"] = evaluate(ours_any, data["val"])
        torch.manual_seed(args.seed)
        vit_any = timm_vit(k, c, args)
        secs = train(vit_any, data, sorted({args.train_size, *args.anyres_sizes}), args, args.seed)
        info["timm ViT any-res"] = {"params": n_params(vit_any), "train_s": round(secs, 1)}
        rows["timm ViT any-res"] = evaluate(vit_any, data["val"])
    return {"rows": rows, "models": info, "classes": k}


def table(name: str, result: dict, sizes: Sequence[int], train_size: int) -> str:
    """Markdown: accuracy per evaluation size, the mean over the unseen sizes and its ratio to the accuracy at
    the training size (how much of its accuracy a model keeps away from the training resolution)."""
    unseen = [s for s in sizes if s != train_size]
    head = f"| {name} (chance {1 / result['classes']:.2f}) | " + " | ".join(f"{s} px" for s in sizes)
    lines = [head + " | mean unseen | kept |", "|---|" + "---|" * (len(sizes) + 2)]
    for label, acc in result["rows"].items():
        acc = {int(k): v for k, v in acc.items()}  # JSON keys are strings
        cells = [f"**{acc[s]:.3f}**" if s == train_size else f"{acc[s]:.3f}" for s in sizes]
        mean = sum(acc[s] for s in unseen) / max(1, len(unseen))
        kept = mean / acc[train_size] if acc.get(train_size) else float("nan")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean:.3f} | {kept:.2f}x |")
    return "\n".join(lines)


#: the rows the figure draws (the table has them all)
FIGURE_ROWS = (
    "ours, none", "ours, pi", "ours, pi with s = size / 32 both ways", "timm ViT (position embeddings resampled)",
    "timm ViT (pos. embed resampled)", "ours, any-res training, no scaling", "ours any-res, none",
    "timm ViT, any-res training", "timm ViT any-res",
)  # fmt: skip


def figure(results: dict, train_size: int, note: str = "") -> tuple:
    """Accuracy against evaluation size, one panel per data set, one line per model (PNG + SVG through
    ``benchmarks/plotting.py``); the training size and chance are marked."""
    from plotting import line_panels

    panels = {}
    for name, result in results.items():
        series = {}
        for label, acc in result["rows"].items():
            if label in FIGURE_ROWS:
                sizes = sorted(int(k) for k in acc)
                series[label] = (sizes, [acc[str(s)] if str(s) in acc else acc[s] for s in sizes])
        panels[f"{name} (chance {1 / result['classes']:.2f}; trained at {train_size} px)"] = series
    styles = {label: {"linestyle": "--"} for label in FIGURE_ROWS if "ViT" in label}
    return line_panels(
        panels, "recognition_accuracy_vs_size", title="classification accuracy at unseen resolutions",
        xlabel="evaluation size (px)", ylabel="accuracy", styles=styles, note=note,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=["digits", "shapes"], choices=("digits", "shapes"))
    p.add_argument("--quick", action="store_true", help="smoke run: 20 steps on small sets")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=2.0)
    p.add_argument("--train-size", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    p.add_argument("--anyres-sizes", type=int, nargs="*", default=[16, 24, 32, 40, 48],
                   help="resolutions of the any-resolution runs (none: skip them)")  # fmt: skip
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--timm-mlp-ratio", type=float, default=6.0)
    p.add_argument("--shapes-train", type=int, default=3000)
    p.add_argument("--shapes-val", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    p.add_argument(
        "--table-from", metavar="FILE", help="only print the tables of a --json file written before"
    )
    p.add_argument("--plot", action="store_true", help="also draw the figure (benchmarks/plotting.py)")
    args = p.parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        for name, result in saved["results"].items():
            print(f"\n{name}: models {json.dumps(result['models'])}")
            print(table(name, result, saved["args"]["sizes"], saved["args"]["train_size"]))
        if args.plot:
            print("figure:", *figure(saved["results"], saved["args"]["train_size"], saved.get("note", "")))
        return saved["results"]
    if args.quick:
        args.steps, args.warmup = 20, 5
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.data:
        t0 = time.perf_counter()
        results[name] = run(name, args)
        print(
            f"\n{name}: models {json.dumps(results[name]['models'])}; {time.perf_counter() - t0:.0f} s in all"
        )
        print(table(name, results[name], args.sizes, args.train_size), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    if args.plot:
        print("figure:", *figure(results, args.train_size, f"python benchmarks/recognition.py, {args.steps} steps"))
    return results


if __name__ == "__main__":
    main()

"""Recognition at every size from 16 to 64 px: our Next-DiT trunk (2-D RoPE) against timm ViTs (learned absolute
position embeddings, resampled to each grid the way timm does it), each at its own best learning rate, on
several seeds.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/recognition.py --data digits --log digits.jsonl
    PYTHONPATH=. python benchmarks/recognition.py --table-from digits.jsonl shapes.jsonl --plot
    PYTHONPATH=. python benchmarks/recognition.py --quick --data digits --lrs 1e-3 --seeds 0 --log /tmp/q.jsonl

Data (offline, real or with known ground truth): scikit-learn's real handwritten 8x8 digits upsampled
bilinearly (10 classes) and the procedural shapes set labelled by its shape (``meta.shape``; rendered
analytically at every size). Models train on ``fit`` (digits: the training digits less every 5th; shapes:
the training stream), the learning rate is chosen on ``tune`` (the held-back digits; the shapes' ``test``
stream) and results are reported on the held-out ``val`` split at each of ``--sizes``.

Runners (:data:`RUNNERS`), all with the same data order, steps, batch, AdamW + cosine schedule, label
smoothing and grad clip:

* ``ours``: ``LuminaModel`` (the image plugin's tokenizer, the framework's ``classification`` objective, mean
  pooling) as the shipped recipes train it: any-resolution training (a random one of ``--anyres-sizes`` per
  batch) under PI with a derived scale that also shrinks (``shrink``), in training and evaluation;
* ``ours, 32 px only``: the same trunk trained at ``--train-size``, evaluated under every registered RoPE
  scaling (derived scale, ``s >= 1``), proportional attention, and PI / NTK with ``shrink`` (at ours'
  learning rate: an ablation, not tuned);
* ``timm ViT, class token`` / ``timm ViT, mean-pooled`` (``global_pool="avg"``, no class token): timm's
  ``VisionTransformer`` of the same width, depth and heads, ``dynamic_img_size=True`` (position embeddings
  resampled bicubically to each grid), trained at ``--train-size``; and either one trained at the same mixed
  sizes as ours (``..., any-res``).

Every model is also scored with its inputs resized to the training size first. Each tuned runner is trained
at every learning rate of ``--lrs`` on ``--sweep-seed`` and scored on ``tune``; the best one (mean accuracy
over the sizes) is then run on every seed of ``--seeds``. Every finished run is appended to ``--log`` (one
JSON line), so an interrupted run resumes; ``--table-from`` prints the tables (ours and the strongest peer
at each size, every row, the sweep) from one or more logs.
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
    """Train images at every training size, held-out images at every evaluation size, and for the
    learning-rate sweep a ``fit`` / ``tune`` pair that never touches the held-out images: digits hold out every
    5th training digit (``fit`` trains on the other 1200); shapes draw ``tune`` from the set's independent
    ``test`` stream."""
    train_sizes = sorted({args.train_size, *args.anyres_sizes})
    if name == "digits":
        lim = 64 if args.quick else None
        train = {s: digits_split("train", s, lim) for s in train_sizes}
        val = {s: digits_split("val", s, lim) for s in args.sizes}
        keep = torch.arange(len(train[args.train_size][1])) % 5 != 0
        fit = {s: (x[keep], y[keep]) for s, (x, y) in train.items()}
        tune = {s: tuple(t[~keep] for t in digits_split("train", s, lim)) for s in args.sizes}
        classes, channels = 10, 1
    else:
        from lumina_modalities.image.shapes import SHAPES

        n_train, n_val = (64, 32) if args.quick else (args.shapes_train, args.shapes_val)
        train = {s: shapes_split("train", s, n_train) for s in train_sizes}
        val = {s: shapes_split("val", s, n_val) for s in args.sizes}
        fit, tune = train, {s: shapes_split("test", s, n_val) for s in args.sizes}
        classes, channels = len(SHAPES), 3
    return {"train": train, "val": val, "fit": fit, "tune": tune, "classes": classes, "channels": channels}


# -- models ------------------------------------------------------------------------------------------------------
def shipped_scaling():
    """The RoPE scaling the shipped recipes train and infer with: PI on a derived scale that also shrinks,
    ``s = grid / training grid`` per axis in both directions (every input's positions span the training grid)."""
    from lumina_core.model.rope import RopeScaling

    return RopeScaling(kind="pi", shrink=True)


class Ours(nn.Module):
    """The framework's pieces: image tokenizer -> LuminaModel trunk -> classification head (model.heads).

    ``train_scaling`` is the RoPE scaling the trunk runs with while it trains (None: plain positions);
    ``rope_scaling`` the one it runs with when called (evaluation sets it per variant and size)."""

    def __init__(self, classes: int, channels: int, args, train_scaling=None) -> None:
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
        self.train_scaling = train_scaling
        self.rope_scaling = None

    def train(self, mode: bool = True):
        super().train(mode)
        self.rope_scaling = self.train_scaling if mode else None
        return self

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.plugin.tokenize(list(images))
        return self.objective.logits(self.model, "cls", tokens, None, self.rope_scaling)


def timm_vit(classes: int, channels: int, args, pool: str = "token") -> nn.Module:
    """timm's VisionTransformer: ``pool="token"`` classifies from a class token (DeiT), ``"avg"`` from the
    mean of the patch tokens with no class token (pools like ours)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=args.train_size, patch_size=args.patch, in_chans=channels, num_classes=classes,
        embed_dim=args.dim, depth=args.depth, num_heads=args.heads, mlp_ratio=args.timm_mlp_ratio,
        class_token=pool == "token", global_pool=pool, dynamic_img_size=True,
    )  # fmt: skip


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- training and evaluation ---------------------------------------------------------------------------------
def lr_at(step: int, lr: float, args) -> float:
    if step < args.warmup:
        return lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(model: nn.Module, train_data: dict, sizes: Sequence[int], lr: float, args, seed: int) -> float:
    """``args.steps`` AdamW steps on batches of one size each (a random one of ``sizes`` per batch)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    n = len(train_data[sizes[0]][1])
    order: list[int] = []
    start = time.perf_counter()
    model.train()
    for step in range(args.steps):
        if len(order) < args.batch:
            order += rng.sample(range(n), n)
        idx, order = order[: args.batch], order[args.batch :]
        size = rng.choice(list(sizes))
        x, y = train_data[size]
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx], label_smoothing=args.label_smoothing)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, lr, args)
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
    """(label, size -> RopeScaling) for every scaling kind the framework has (its derived scale, which only
    stretches), proportional attention, and PI on a derived scale that also shrinks (``shrink``).
    Time-aware kinds run at the classifier's fixed t = 1."""
    from lumina_core.model.rope import RopeScaling
    from lumina_core.registry import ROPE_SCALINGS

    kinds = ["none", *(k for k in ROPE_SCALINGS.names() if k != "none")]
    out: list[tuple[str, Callable[[int], object]]] = [
        (kind, lambda size, k=kind: RopeScaling(kind=k)) for kind in kinds
    ]
    out.append(
        ("none + proportional attention", lambda size: RopeScaling(kind="none", proportional_attention=True))
    )
    out.append(
        ("ntk + proportional attention", lambda size: RopeScaling(kind="ntk", proportional_attention=True))
    )
    out.append(("ntk, shrink", lambda size: RopeScaling(kind="ntk", shrink=True)))
    out.append(("pi, shrink", lambda size: shipped_scaling()))
    return out


#: runner -> (model, training sizes "single" | "anyres", RoPE scaling in training ("shrink" | None), tuned)
RUNNERS = {
    "ours": ("ours", "anyres", "shrink", True),
    "ours, 32 px only": ("ours", "single", None, False),
    "ours, any-res, plain positions": ("ours", "anyres", None, False),
    "timm ViT, class token": ("vit-token", "single", None, True),
    "timm ViT, mean-pooled": ("vit-avg", "single", None, True),
    "timm ViT, class token, any-res": ("vit-token", "anyres", None, True),
    "timm ViT, mean-pooled, any-res": ("vit-avg", "anyres", None, True),
}  # fmt: skip
#: the evaluation that represents a runner in the learning-rate sweep and the headline
PRIMARY = {"ours": "pi, shrink", "ours, 32 px only": "pi, shrink", "ours, any-res, plain positions": "none"}


def build(runner: str, classes: int, channels: int, args) -> nn.Module:
    kind, _, train_scaling, _ = RUNNERS[runner]
    if kind == "ours":
        return Ours(classes, channels, args, shipped_scaling() if train_scaling == "shrink" else None)
    return timm_vit(classes, channels, args, pool="token" if kind == "vit-token" else "avg")


def resized(model: Callable[[Tensor], Tensor], side: int) -> Callable[[Tensor], Tensor]:
    """``model`` fed its inputs resized to ``side`` px first (bicubic, antialiased): what a classifier that
    only reads its training size does with an image of another size."""

    def call(x: Tensor) -> Tensor:
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
        return model(x.clamp(-1, 1))

    return call


def fit_and_score(runner: str, data: dict, lr: float, seed: int, args) -> dict:
    """Train one runner at one learning rate and seed on ``fit``; accuracies per evaluation (label -> size ->
    accuracy) on the tuning split (``tune``) and the held-out one (``val``)."""
    _, sizes_kind, _, _ = RUNNERS[runner]
    sizes = sorted({args.train_size, *args.anyres_sizes}) if sizes_kind == "anyres" else [args.train_size]
    torch.manual_seed(seed)
    model = build(runner, data["classes"], data["channels"], args)
    secs = train(model, data["fit"], sizes, lr, args, seed)
    out: dict = {
        "params": n_params(model.model if isinstance(model, Ours) else model),
        "train_s": round(secs),
    }
    for split in ("tune", "val"):
        if not isinstance(model, Ours):
            out[split] = {
                "": evaluate(model, data[split]),
                "resized to 32 px": evaluate(resized(model, 32), data[split]),
            }
            continue
        variants = rope_variants(args.train_size) if runner == "ours, 32 px only" else []
        variants = variants or [
            (PRIMARY[runner], lambda size: shipped_scaling() if RUNNERS[runner][2] else None)
        ]
        rows = {}
        for label, make in variants:
            acc = {}
            for size in args.sizes:
                model.rope_scaling = make(size)
                acc.update(evaluate(model, {size: data[split][size]}))
            rows[label] = acc
        model.rope_scaling = variants[-1][1](args.train_size)
        rows["resized to 32 px"] = evaluate(resized(model, args.train_size), data[split])
        out[split] = rows
    return out


def primary(runner: str, rows: dict) -> dict:
    return rows[PRIMARY.get(runner, "")]


def mean_acc(acc: dict) -> float:
    return sum(acc.values()) / len(acc)


def read_log(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def best_lr(records: list[dict], data: str, runner: str) -> float | None:
    """The learning rate whose seed-0... sweep-seed run scores the highest mean tuning accuracy over the sizes."""
    sweep = [r for r in records if r["data"] == data and r["runner"] == runner and r["sweep"]]
    if not sweep:
        return None
    return max(sweep, key=lambda r: mean_acc(primary(runner, r["tune"])))["lr"]


def run(name: str, args) -> None:
    """Run the jobs of one data set in priority order, appending each result to ``args.log`` as one JSON line
    (jobs already there are skipped, so an interrupted run resumes): every tuned runner at each learning rate
    of ``--lrs`` on the sweep seed (in that order), then the other seeds at each runner's best learning rate,
    then the untuned runners at ours' learning rate."""
    data = dataset(name, args)

    def job(runner: str, lr: float, seed: int, sweep: bool) -> None:
        done = read_log(args.log)
        if any(
            r["data"] == name and r["runner"] == runner and r["lr"] == lr and r["seed"] == seed for r in done
        ):
            return
        out = fit_and_score(runner, data, lr, seed, args)
        record = {
            "data": name,
            "runner": runner,
            "lr": lr,
            "seed": seed,
            "sweep": sweep,
            "classes": data["classes"],
            **out,
        }
        with open(args.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"  {name} | {runner} | lr {lr:g} | seed {seed}: tune {mean_acc(primary(runner, out['tune'])):.3f}, "
              f"val {primary(runner, out['val'])} ({out['train_s']} s)", flush=True)  # fmt: skip

    tuned = [r for r in args.runners if RUNNERS[r][3]]
    for lr in args.lrs:
        for runner in tuned:
            job(runner, lr, args.sweep_seed, True)
    for seed in args.seeds:
        for runner in tuned:
            job(runner, best_lr(read_log(args.log), name, runner), seed, seed == args.sweep_seed)
    ours_lr = best_lr(read_log(args.log), name, "ours") or args.lrs[0]
    for runner in (r for r in args.runners if not RUNNERS[r][3]):
        for seed in args.seeds:
            job(runner, ours_lr, seed, False)


#: how the shipped recipe's ``lumina predict`` reads a file (image plugin ``read_scale: [1, 2]``)
PREDICT_ROW = "read as lumina predict does"


def with_predict_row(runner: str, rows: dict, train_size: int = 32) -> dict:
    """Ours' accuracies as ``lumina predict`` reads files with ``read_scale: [1, 2]``: a file smaller than the
    training size upsampled to it (the ``resized`` evaluation), one of 1-2x its size read as it is (the
    native one); composed per seed from the two evaluations of the same model."""
    if runner != "ours":
        return rows
    native, up = rows[PRIMARY[runner]], rows["resized to 32 px"]
    return {**rows, PREDICT_ROW: {k: (up[k] if int(k) < train_size else native[k]) for k in native}}


def collect(records: list[dict]) -> dict:
    """Results per data set from the log: the sweep (tuning accuracies on the sweep seed), each runner's
    chosen learning rate, and its held-out accuracies on every seed at that rate."""
    results: dict = {}
    for name in dict.fromkeys(r["data"] for r in records):
        mine = [r for r in records if r["data"] == name]
        res = {"classes": mine[0]["classes"], "sweep": {}, "lr": {}, "runs": {}, "models": {}}
        for runner in RUNNERS:
            runs = [r for r in mine if r["runner"] == runner]
            if not runs:
                continue
            if RUNNERS[runner][3]:
                res["sweep"][runner] = {str(r["lr"]): primary(runner, r["tune"]) for r in runs if r["sweep"]}
                lr = best_lr(mine, name, runner)
            else:
                lr = runs[0]["lr"]
            chosen = [r for r in runs if r["lr"] == lr]
            res["lr"][runner] = lr
            res["runs"][runner] = {str(r["seed"]): with_predict_row(runner, r["val"]) for r in chosen}
            res["models"][runner] = {
                "params": chosen[0]["params"],
                "seeds": sorted(r["seed"] for r in chosen),
            }
        results[name] = res
    return results


def mean_rows(result: dict) -> dict[str, dict[int, tuple[float, float]]]:
    """label -> size -> (mean over seeds, half the spread between the seeds) of every runner's evaluations."""
    out = {}
    for runner, seeds in result["runs"].items():
        labels = next(iter(seeds.values()))
        for label in labels:
            plain = not label or (runner != "ours, 32 px only" and label == PRIMARY.get(runner))
            name = runner if plain else f"{runner}, {label}"
            cells = {}
            for size in labels[label]:
                accs = [seeds[s][label][size] for s in seeds]
                cells[int(size)] = (sum(accs) / len(accs), (max(accs) - min(accs)) / 2)
            out[name] = cells
    return out


def strongest_peer(rows: dict) -> dict[int, tuple[str, tuple[float, float]]]:
    """size -> (the peer row with the highest mean accuracy at that size, its cell): every timm model, read
    at the size as it is or resized to the training size, whichever scores higher there."""
    peers = {k: v for k, v in rows.items() if k.startswith("timm")}
    if not peers:
        return {}
    sizes = next(iter(peers.values())).keys()
    return {s: max(((k, v[s]) for k, v in peers.items()), key=lambda kv: kv[1][0]) for s in sizes}


def fmt(cell: tuple[float, float]) -> str:
    return f"{cell[0]:.3f} ± {cell[1]:.3f}"


def headline(name: str, result: dict, sizes: Sequence[int]) -> str:
    """Markdown: ours as shipped (read as it is by ``lumina eval``, and as ``lumina predict`` reads it)
    against the strongest peer at each size; mean ± half the spread of the seeds."""
    rows = mean_rows(result)
    best = strongest_peer(rows)
    lines = [f"| {name} | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for label, key in (("ours, read at its size (`lumina eval`)", "ours"),
                       ("ours, read as `lumina predict` does", f"ours, {PREDICT_ROW}")):  # fmt: skip
        if key in rows:
            lines.append(f"| {label} | " + " | ".join(fmt(rows[key][s]) for s in sizes) + " |")
    if best:
        lines.append("| strongest peer | " + " | ".join(fmt(best[s][1]) for s in sizes) + " |")
        lines.append(
            "| which peer | " + " | ".join(best[s][0].removeprefix("timm ViT, ") for s in sizes) + " |"
        )
    return "\n".join(lines)


def table(name: str, result: dict, sizes: Sequence[int], train_size: int) -> str:
    """Markdown: every runner and evaluation, accuracy per size (mean ± half-spread over the seeds), the
    mean over all sizes and the learning rate the sweep chose."""
    head = f"| {name} (chance {1 / result['classes']:.2f}) | lr | " + " | ".join(f"{s} px" for s in sizes)
    lines = [head + " | mean 16-64 |", "|---|---|" + "---|" * (len(sizes) + 1)]
    for label, cells in mean_rows(result).items():
        runner = next(r for r in sorted(RUNNERS, key=len, reverse=True) if label.startswith(r))
        mean = sum(cells[s][0] for s in sizes) / len(sizes)
        shown = [f"**{fmt(cells[s])}**" if s == train_size else fmt(cells[s]) for s in sizes]
        lines.append(f"| {label} | {result['lr'][runner]:g} | " + " | ".join(shown) + f" | {mean:.3f} |")
    return "\n".join(lines)


def sweep_table(name: str, result: dict, sizes: Sequence[int]) -> str:
    """Markdown: mean accuracy over the sizes on the tuning split, per tuned runner and learning rate."""
    lrs = sorted({float(lr) for scores in result["sweep"].values() for lr in scores})
    lines = [f"| {name}: sweep (tuning split) | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |"]
    lines.append("|---|" + "---|" * len(lrs))
    for runner, scores in result["sweep"].items():
        cells = []
        for lr in lrs:
            acc = next((v for k, v in scores.items() if float(k) == lr), None)
            cells.append("" if acc is None else f"{sum(acc.values()) / len(acc):.3f}")
        lines.append(f"| {runner} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the rows the figure draws (the tables have them all)
FIGURE_ROWS = ("ours", f"ours, {PREDICT_ROW}", "ours, 32 px only, none", "ours, 32 px only, pi, shrink")


def figure(results: dict, train_size: int, note: str = "") -> tuple:
    """Accuracy against evaluation size, one panel per data set: ours as shipped (read as it is, and as
    ``lumina predict`` reads), the 32 px-trained trunk with and without scaling, and every peer read as it is
    (dashed) plus the mean-pooled one resized to 32 px; mean over the seeds."""
    from plotting import line_panels

    panels = {}
    for name, result in results.items():
        series = {}
        for label, cells in mean_rows(result).items():
            peer = label.startswith("timm") and (
                "resized" not in label or label == "timm ViT, mean-pooled, resized to 32 px"
            )
            if label in FIGURE_ROWS or peer:
                sizes = sorted(cells)
                series[label] = (sizes, [cells[s][0] for s in sizes])
        panels[f"{name} (chance {1 / result['classes']:.2f}; trained at {train_size} px)"] = series
    styles = {label: {"linestyle": "--"} for s in panels.values() for label in s if label.startswith("timm")}
    return line_panels(
        panels, "recognition_accuracy_vs_size", title="classification accuracy from 16 to 64 px",
        xlabel="evaluation size (px)", ylabel="accuracy", styles=styles, note=note,
    )  # fmt: skip


def report(results: dict, sizes: Sequence[int], train_size: int) -> None:
    for name, result in results.items():
        print(f"\n{name}: models {json.dumps(result['models'])}; learning rates {json.dumps(result['lr'])}")
        print(headline(name, result, sizes))
        print()
        print(table(name, result, sizes, train_size))
        if result["sweep"]:
            print()
            print(sweep_table(name, result, sizes))


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=["digits", "shapes"], choices=("digits", "shapes"))
    p.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=list(RUNNERS), metavar="RUNNER",
                   help=f"which models to train (default all: {'; '.join(RUNNERS)})")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: 20 steps on small sets")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lrs", type=float, nargs="+", default=[2e-3, 4e-3, 1e-3],
                   help="learning rates of the sweep, in the order they run (one: no sweep)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--sweep-seed", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=2.0)
    p.add_argument("--train-size", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    p.add_argument("--anyres-sizes", type=int, nargs="*", default=[16, 24, 32, 40, 48],
                   help="resolutions of the any-resolution runs")  # fmt: skip
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--timm-mlp-ratio", type=float, default=6.0)
    p.add_argument("--shapes-train", type=int, default=3000)
    p.add_argument("--shapes-val", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log", metavar="FILE", default="recognition.jsonl",
                   help="one JSON line per finished run; runs already there are skipped (resume)")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="also write the collected results here")
    p.add_argument("--table-from", metavar="FILE", nargs="+",
                   help="only print the tables of run logs (--log) or a --json file written before")  # fmt: skip
    p.add_argument("--plot", action="store_true", help="also draw the figure (benchmarks/plotting.py)")
    args = p.parse_args(argv)
    note = f"python benchmarks/recognition.py, {args.steps} steps, seeds {args.seeds}"
    if args.table_from:
        if len(args.table_from) == 1 and args.table_from[0].endswith(".json"):
            with open(args.table_from[0]) as f:
                saved = json.load(f)
            results, note = saved["results"], saved.get("note", note)
        else:
            results = collect([r for path in args.table_from for r in read_log(path)])
    else:
        if args.quick:
            args.steps, args.warmup = 20, 5
        torch.set_num_threads(args.threads)
        for name in args.data:
            t0 = time.perf_counter()
            run(name, args)
            print(f"{name}: {time.perf_counter() - t0:.0f} s in all")
        results = collect(read_log(args.log))
    report(results, args.sizes, args.train_size)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "note": note, "results": results}, f, indent=2)
    if args.plot:
        print("figure:", *figure(results, args.train_size, note))
    return results


if __name__ == "__main__":
    main()

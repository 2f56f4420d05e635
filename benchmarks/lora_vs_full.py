"""LoRA against full fine-tuning at equal steps on a domain change: the shapes model fine-tuned on handwritten
digits.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lora_vs_full.py --base runs/shapes_tiny/checkpoints/step_0001000

Every arm starts from the same base (a ``recipes/image/shapes_tiny.yaml`` run's EMA weights: coloured shapes,
captions through MiniLM) and trains with the same recipe, seed, steps, batch and learning-rate schedule through
``lumina train`` (``lumina_core.training.api.train``), on the real handwritten digits of
``lumina_modalities/image/digits.py`` (scikit-learn's, upsampled to 32 px, grey in three channels, captioned
"a handwritten 7"; the 1500-image train split). The arms differ only in what trains:

    full          every weight
    lora          train.lora (rank, alpha) with its defaults: the factors on the blocks' projections and (train.lora.
                  adapt_conditioning) their adaLN modulation and the caption embedder, B at train.lora.lr_ratio =
                  16 times A's learning rate (LoRA+), and train.lora.train_also's default, the task adapter
    lora_factors  train.lora with train.lora.train_also=[]: the factors only (what every LoRA run did before)

``--set KEY=VALUE`` (repeatable) adds a recipe override to the LoRA arms (``--set train.lora.lr_ratio=16``,
``--set 'train.lora.train_also=[adapters,adaLN_modulation]'``); the arm's name and run folder carry it.

Each run is then graded with ``lumina eval`` (``lumina_core.training.api.evaluate``, EMA weights, the recipe's
sampler): ``digit_acc`` is how often an RBF SVM fitted on the real training digits reads the digit the caption
asks for, over the held-out digits' captions (chance 0.1). The table prints each arm beside full fine-tuning
with the ratio, and the results go to ``--json``. A run folder that already holds the final step of an arm with
the same recipe is graded again, not retrained (``--retrain`` to force).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "image" / "shapes_tiny.yaml"
ARMS = ("full", "lora", "lora_factors")


def digits_overrides(base: str, steps: int, seed: int, lr: float) -> list[str]:
    """The shapes recipe turned to the digits (same task, modality and text encoder), from ``base``."""
    return [
        "tasks.0.data.name=digits",
        "tasks.0.data.params.size=32",
        "tasks.0.data.params.condition=text",
        "tasks.0.data.params.channels=3",
        "~tasks.0.data.val_params",
        "~tasks.0.data.params.length",
        f"train.init_from={base}",
        f"train.max_steps={steps}",
        f"train.ckpt_every={steps}",
        f"train.lr={lr}",
        f"run.seed={seed}",
        "train.threads=1",
    ]


def arm_overrides(arm: str, rank: int, alpha: float, extra: Sequence[str] = ()) -> list[str]:
    if arm == "full":
        return []
    lora = [f"train.lora.rank={rank}", f"train.lora.alpha={alpha}"]
    return lora + (["train.lora.train_also=[]"] if arm == "lora_factors" else []) + list(extra)


def arm_label(arm: str, rank: int, alpha: float, extra: Sequence[str] = ()) -> str:
    """The arm's name in the table (``lora r8 a16 lr_ratio=16``) and, with ``_`` for spaces and only
    letters, digits and ``._=-``, its run folder."""
    if arm == "full":
        return arm
    return " ".join([arm, f"r{rank}", f"a{alpha:g}", *(e.removeprefix("train.lora.") for e in extra)])


def folder_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", label.replace(" ", "_")).strip("_")


def final_loss(run_dir: Path, last: int = 2) -> float:
    """Mean training loss of the last ``last`` logged points of ``curves/loss.csv``."""
    rows = (run_dir / "curves" / "loss.csv").read_text().strip().splitlines()[1:]
    values = [float(r.split(",")[1]) for r in rows[-last:]]
    return sum(values) / len(values)


def run_arm(arm: str, args: argparse.Namespace) -> dict[str, Any]:
    from lumina_core.config.loader import load_recipe
    from lumina_core.training.api import evaluate, train

    label = arm_label(arm, args.rank, args.alpha, args.set)
    out = Path(args.runs) / folder_name(label)
    overrides = digits_overrides(args.base, args.steps, args.seed, args.lr)
    overrides += arm_overrides(arm, args.rank, args.alpha, args.set)
    overrides += [f"run.name={out.name}", f"run.output_dir={out}", f"tasks.0.eval.num_samples={args.samples}"]
    cfg = load_recipe(RECIPE, overrides)
    done = out / "checkpoints" / f"step_{args.steps:07d}"
    retrain = args.retrain or not (done.is_dir() and _same_training(out / "config.yaml", cfg))
    if retrain:
        train(cfg, overwrite=True)
    graded = out / "metrics.json"
    record = json.loads(graded.read_text()) if graded.is_file() and not retrain else {}
    if Path(record.get("checkpoint", "")).resolve() == done.resolve() and record.get("samples") == args.samples:
        metrics = record["metrics"]  # this checkpoint, already graded on as many samples
    else:
        metrics = evaluate(cfg, done)
        graded.write_text(json.dumps({**json.loads(graded.read_text()), "samples": args.samples}, indent=2) + "\n")
    trained = _trained_parameters(cfg)
    return {
        "arm": label,
        "digit_acc": metrics["shapes/digit_acc"],
        "final_loss": final_loss(out),
        "trained_parameters": trained,
        "run": str(out),
        "overrides": overrides,
    }


def _same_training(saved: Path, cfg: Any) -> bool:
    """Whether the run folder's recipe trains exactly as ``cfg`` does (model, train section, tasks but their
    eval settings)."""
    from omegaconf import OmegaConf

    if not saved.is_file():
        return False

    def key(c: Any) -> Any:
        d = OmegaConf.to_container(c, resolve=True)
        return d["model"], d["train"], d["run"]["seed"], [{k: v for k, v in t.items() if k != "eval"} for t in d["tasks"]]

    from lumina_core.config.loader import load_recipe

    return key(load_recipe(saved)) == key(cfg)


def _trained_parameters(cfg: Any) -> int:
    from lumina_core.training.api import prepare_weights
    from lumina_core.training.build import build_run

    parts = build_run(cfg)
    prepare_weights(parts, cfg)
    return sum(p.numel() for p in parts.model.parameters() if p.requires_grad)


def table(results: list[dict[str, Any]]) -> str:
    full = next((r for r in results if r["arm"] == "full"), None)
    w = max([20, *(len(r["arm"]) + 2 for r in results)])
    lines = [f"{'arm':<{w}}{'trained params':>16}{'final loss':>12}{'digit_acc':>11}{'acc / full':>12}{'loss / full':>13}"]
    for r in results:
        acc_ratio = f"{r['digit_acc'] / full['digit_acc']:.2f}" if full and full["digit_acc"] else "-"
        loss_ratio = f"{r['final_loss'] / full['final_loss']:.2f}" if full else "-"
        lines.append(
            f"{r['arm']:<{w}}{r['trained_parameters']:>16,}{r['final_loss']:>12.4f}{r['digit_acc']:>11.3f}"
            f"{acc_ratio:>12}{loss_ratio:>13}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="runs/shapes_tiny/checkpoints/last", help="a shapes_tiny checkpoint")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=200, help="held-out captions graded per arm")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--runs", default="runs/bench_lora", help="where the arms' run folders go")
    p.add_argument("--json", default="benchmarks/results/lora_vs_full.json", help="'' to write nothing")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe override for the LoRA arms (repeatable), e.g. train.lora.lr_ratio=16")
    args = p.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        p.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    if not Path(args.base).exists():
        print(f"no base checkpoint at {args.base}: train one with `lumina train {RECIPE.relative_to(ROOT)}` "
              "and pass --base RUN/checkpoints/last", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    results = [run_arm(arm, args) for arm in arms]
    settings = {k: getattr(args, k) for k in ("base", "steps", "seed", "lr", "samples")}  # rank, alpha: per arm
    print(f"settings: {settings}, rank {args.rank}, alpha {args.alpha:g}")
    print(table(results))
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text()) if path.is_file() else {}
        merged = {r["arm"]: r for r in old.get("results", [])} if old.get("settings") == settings else {}
        merged.update({r["arm"]: r for r in results})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": settings, "results": list(merged.values())}, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

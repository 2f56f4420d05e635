"""Is the data loader ever the bottleneck? Loader throughput beside the training step's consumption.

    python benchmarks/loader.py [--recipes recipes/image/shapes_tiny.yaml ...] [--workers 0 1 2]
                                [--batches 20] [--steps 12] [--threads 1] [--no-train] [--no-stream]
                                [--no-recipes] [--stream-items 1024] [--repeat 3]
                                [--json benchmarks/results/loader.json]

For every tiny recipe (default: ``recipes/*/*tiny*.yaml`` and the video plugin's) and each of its tasks:

* **loader**: the task's training dataset, built as the trainer builds it (``lumina_core.data.build_dataset``,
  skip policy included), read through a ``DataLoader`` with the recipe's batch size and random indices, with
  0, 1 and 2 worker processes: items/s over ``--batches`` batches after the first (the first batch, which
  pays for starting the workers, is reported apart as ``first_s``); the dataset is built afresh for each
  worker count, so datasets that cache items show their first-epoch (cold) rate;
* **training step**: items/s the real training loop consumes (``lumina_core.training.api.train`` on the
  recipe, ``batch_size x steps/s``), timed as the difference of a run of ``W + --steps`` steps and a run of
  ``W`` steps, so set-up, the first step and the final checkpoint cancel; previews are switched off.
  ``slowest loader / step`` is the slowest of the three loader rates over the step's items/s: above 1 the
  loader keeps up, even reading in the training process (with workers it also runs beside the step).

**Streaming against a peer** (``--no-stream`` skips it, ``--no-recipes`` runs only it): ``--stream-items``
(1024) items of ``shapes`` packed into 4 PNG shards with ``lumina data pack``'s packer, streamed by
``image_stream`` (ours: shuffled shards, a 256-sample shuffle buffer, split by worker, positions tagged for
resume) and by ``webdataset.WebDataset`` with the same shuffle buffer and the same decode function (the
peer), side by side in one run, ``--repeat`` rounds in alternating order, medians and their ratio.

Timings depend on the machine's load (the project's machine is shared by several people): compare the rows
of one run, and read the ratios rather than the absolute rates.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def default_recipes() -> list[str]:
    found = sorted(glob.glob(str(ROOT / "recipes" / "*" / "*tiny*.yaml")))
    found += sorted(glob.glob(str(ROOT / "plugins" / "*" / "recipes" / "*tiny*.yaml")))
    return [os.path.relpath(p, ROOT) for p in found]


def loader_rate(dataset: Any, batch_size: int, workers: int, batches: int, seed: int = 0) -> dict[str, float]:
    """items/s of a DataLoader over ``dataset`` (random indices, the trainer's collation)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from lumina_core.data import collate_items
    from lumina_core.data.stream import is_stream

    if is_stream(dataset):
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_items)
    else:
        g = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * (batches + 1), generator=g)
        loader = DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate_items
        )
    start = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        n += len(next(it)["samples"])
    rate = n / (time.perf_counter() - start)
    del it
    return {"items_per_s": rate, "first_s": first}


def train_rate(recipe: str, steps: int, warm: int, threads: int, workdir: Path) -> float:
    """Training steps/s of the real loop on ``recipe`` (difference of two runs: set-up cancels)."""
    from lumina_core.config.loader import load_recipe
    from lumina_core.training.api import train

    times = []
    for n in (1, warm, warm + steps):  # the first run pays once-per-process costs (imports, encoder load)
        cfg = load_recipe(
            str(ROOT / recipe),
            [
                f"run.output_dir={workdir / f'run{n}'}",
                f"train.threads={threads}",
                "run.device=cpu",
                f"train.max_steps={n}",
                "train.preview_every=1000000",
                "train.ckpt_every=1000000",
                "train.log_every=1000000",
            ],
        )
        start = time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            train(cfg)
        times.append(time.perf_counter() - start)
    if times[2] <= times[1]:
        raise RuntimeError(f"{warm + steps} steps took no longer than {warm} ({times[2]:.1f} s vs {times[1]:.1f} s)")
    return steps / (times[2] - times[1])


def recipe_rows(recipe: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from omegaconf import OmegaConf

    from lumina_core.config.loader import load_recipe
    from lumina_core.data import build_dataset

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    cfg = load_recipe(str(ROOT / recipe))
    step_rate = None
    if not args.no_train:
        try:
            step_rate = train_rate(recipe, args.steps, args.warm, args.threads, workdir / recipe.replace("/", "_"))
        except Exception as err:  # noqa: BLE001 - report it and go on with the loader figures
            print(f"  {recipe}: training run failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
    rows = []
    for task in cfg.tasks:
        bs = int(task.data.batch_size)
        row: dict[str, Any] = {"recipe": recipe, "task": task.name, "dataset": str(task.data.name), "batch": bs}
        for w in args.workers:  # a fresh dataset each time: no worker count inherits another's caches
            ds = build_dataset(str(task.data.name), plain(task.data.params), "train", plain(task.data.val_params))
            row[f"w{w}"] = loader_rate(ds, bs, w, args.batches)
        if step_rate is not None:
            row["step_items_per_s"] = step_rate * bs
            row["headroom_w0"] = row["w0"]["items_per_s"] / row["step_items_per_s"] if "w0" in row else None
        rows.append(row)
        print(format_row(row, args.workers), flush=True)
    return rows


def format_row(row: dict[str, Any], workers: list[int]) -> str:
    cells = [f"{row['recipe']} [{row['task']}]", str(row["batch"])]
    cells += [f"{row[f'w{w}']['items_per_s']:.0f} ({row[f'w{w}']['first_s']:.2f} s)" for w in workers]
    step = row.get("step_items_per_s")
    cells.append("-" if step is None else f"{step:.0f}")
    cells.append("-" if step is None else f"{min(row[f'w{w}']['items_per_s'] for w in workers) / step:.1f}x")
    return "| " + " | ".join(cells) + " |"


# -- streaming: ours against webdataset's own pipeline ------------------------------------------------------
def stream_rows(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    import numpy as np
    import webdataset as wds
    from PIL import Image
    from torch.utils.data import DataLoader

    import lumina_modalities.image  # noqa: F401  (registers the datasets)
    from lumina_core.data import build_dataset, collate_items
    from lumina_core.data.pack import pack_folder
    from lumina_modalities.image.folder import decode_image_sample

    src = workdir / "stream_src"
    src.mkdir(parents=True, exist_ok=True)
    shapes = build_dataset("shapes", {"size": 32, "length": args.stream_items}, "train")
    for i in range(args.stream_items):
        item = shapes[i]
        pixels = ((item["sample"].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(src / f"s{i:05d}.png")
        (src / f"s{i:05d}.txt").write_text(item["condition"])
    report = pack_folder(src, workdir / "stream_shards", shard_size=args.stream_items // 4, overwrite=True)
    urls = [str(p) for p in report.shards]
    decode = functools.partial(decode_image_sample, size=32, channels=3, condition="text")
    bs, rows = 32, []
    batches = min(args.batches, args.stream_items // bs - 2)
    print(f"\n| streamed, batch 32, median of {args.repeat} | workers | ours items/s | webdataset items/s | ours / webdataset |")
    print("|---|---|---|---|---|")
    for w in args.workers:
        ours_rates, peer_rates = [], []
        for r in range(args.repeat):  # alternate who goes first: the machine's load drifts
            for who in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
                if who == "ours":
                    ours = build_dataset("image_stream", {"urls": urls, "size": 32, "shuffle_buffer": 256}, "train")
                    ours_rates.append(loader_rate(ours, bs, w, batches)["items_per_s"])
                else:
                    peer = wds.WebDataset(urls, shardshuffle=len(urls), empty_check=False).shuffle(256).map(decode)
                    loader = DataLoader(peer, batch_size=bs, num_workers=w, collate_fn=collate_items)
                    peer_rates.append(_peer_rate(loader, batches))
        a, b = statistics.median(ours_rates), statistics.median(peer_rates)
        rows.append({"workers": w, "ours_items_per_s": a, "webdataset_items_per_s": b, "ratio": a / b,
                     "ours_all": ours_rates, "webdataset_all": peer_rates})  # fmt: skip
        print(f"| image_stream vs WebDataset | {w} | {a:.0f} | {b:.0f} | {a / b:.2f} |", flush=True)
    return rows


def _peer_rate(loader: Any, batches: int) -> float:
    it = iter(loader)
    next(it)
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        n += len(next(it)["samples"])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="*", default=None, help="default: every tiny recipe")
    parser.add_argument("--workers", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader (after the first)")
    parser.add_argument("--steps", type=int, default=12, help="training steps timed per recipe")
    parser.add_argument("--warm", type=int, default=3, help="steps of the shorter run that cancels set-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training runs")
    parser.add_argument("--no-train", action="store_true", help="loader figures only")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming comparison")
    parser.add_argument("--stream-items", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the streaming comparison (median)")
    parser.add_argument("--no-recipes", action="store_true", help="the streaming comparison only")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if 0 not in args.workers:
        args.workers = [0, *args.workers]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    recipes = args.recipes or default_recipes()
    print(f"# loader vs training step; torch threads {args.threads}; {os.cpu_count()} CPUs (shared machine)\n")
    print("| recipe [task] | batch | " + " | ".join(f"loader items/s, {w} workers (first batch)" for w in args.workers)
          + " | step consumes items/s | slowest loader / step |")  # fmt: skip
    print("|---|---|" + "---|" * len(args.workers) + "---|---|")
    results: dict[str, Any] = {"threads": args.threads, "recipes": [], "stream": []}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in [] if args.no_recipes else recipes:
            results["recipes"] += recipe_rows(recipe, args, Path(tmp))
        if not args.no_stream:
            results["stream"] = stream_rows(args, Path(tmp))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

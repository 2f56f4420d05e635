"""Multi-view generation: camera encodings side by side, 4 -> 8 views, and the cost of joint attention.

    python benchmarks/multiview.py --runs runs/multiview_scenes_tiny runs/multiview_scenes_tiny_matrix
    python benchmarks/multiview.py --speed-only

Quality (for every trained run given, EMA weights, the recipe's sampling settings): generate the views of the
first ``--num`` held-out captions at the poses of their ground-truth renders and score them with the dataset's
checker (adherence, PSNR, SSIM, silhouette IoU against the truth; leave-one-out visual-hull consistency
without it). Then the same captions with 8 views on a finer orbit (the 4 training poses and the 4 between
them) from the same 4-view model, once with plain RoPE and once with position interpolation on the view axis
(``rope_scaling: pi``, scale 8/4 = 2), scored against renders at the 8 poses. The ground-truth renders
themselves are scored too (the checker's ceiling).

Speed (peer side by side, same process, interleaved): one training step (forward + backward) of the trunk on
4 views denoised jointly as one sequence (what the plugin does) vs the same views as 4 independent sequences
(per-view generation, no cross-view attention), and the cost of each camera encoding. Ratios are printed;
the machine may be shared, so compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def quality(run: Path, num: int, steps: int | None, eight: bool = True) -> dict[str, dict[str, float]]:
    from omegaconf import OmegaConf

    from lumina_core.sampling import generate
    from lumina_core.training.api import load_run
    from lumina_core.training.build import as_recipe, build_dataset, sampling_kwargs
    from lumina_modalities.multiview import MultiviewScenes

    cfg = as_recipe(OmegaConf.load(run / "config.yaml"))
    model, plugins, conds = load_run(cfg, run / "checkpoints" / "last", device="cpu")
    task = cfg.tasks[0]
    plugin, enc = plugins[task.name], conds[task.name]
    kw = sampling_kwargs(task)
    if steps:
        kw["steps"] = steps
    val4 = build_dataset(task, "val")
    p = dict(val4.__dict__)
    data8 = MultiviewScenes(
        views=8, size=p["size"], max_objects=p["max_objects"], condition=p["condition"], elevation=p["elevation"],
        elevation_jitter=p["elevation_jitter"], radius=p["radius"], fov=p["fov"], length=p["length"],
        seed=p["seed"], split="val",
    )  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    settings = [("4 views", val4, None), ("8 views, RoPE as trained", data8, None),
                ("8 views, PI on the view axis", data8, {"name": "pi"})]  # fmt: skip
    for label, data, rope in settings if eight else settings[:1]:
        items = [data[i] for i in range(min(num, len(data)))]
        samples = []
        for start in range(0, len(items), 8):
            chunk = items[start : start + 8]
            samples += generate(
                model, plugin, enc, task.name, [it["condition"] for it in chunk],
                shapes=[plugin.sample_shape(it["sample"]) for it in chunk],
                **{**kw, "rope_scaling": rope, "seed": kw["seed"] + start},
            )  # fmt: skip
        out[label] = data.score([s.float() for s in samples], items)
        if label != "8 views, PI on the view axis":
            out[label + " (truth)"] = data.score([it["sample"] for it in items], items)
        print(
            f"  {run.name} {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[label].items()), flush=True
        )
    return out


def speed(repeats: int) -> dict[str, float]:
    """ms per training step: joint views vs independent views, and each camera encoding (interleaved)."""
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_modalities.multiview import MultiviewPlugin, MultiviewScenes

    torch.manual_seed(0)
    data = MultiviewScenes(views=4, size=32, length=8, supersample=1)
    samples = [data[i]["sample"] for i in range(8)]
    cfg = NextDiTConfig.from_preset("tiny", n_layers=3)
    runners = {}
    for camera in ("plucker", "matrix", "none"):
        plugin = MultiviewPlugin(views=4, size=32, patch=4, camera=camera)
        model = LuminaModel(cfg, {"mv": plugin.adapter_spec()})
        batch = plugin.tokenize(samples)
        runners[f"joint, camera={camera}"] = (model, batch)
        if camera == "plucker":  # the peer: each view its own sequence (4x the batch, 1/4 the length)
            singles = [torch.cat([s[v : v + 1, :3], s[:1, 3:]], dim=1) for s in samples for v in range(4)]
            runners["independent views, camera=plucker"] = (model, plugin.tokenize(singles))
    times: dict[str, list[float]] = {k: [] for k in runners}
    t = torch.rand(8)
    for _ in range(repeats):
        for name, (model, batch) in runners.items():
            tt = t.repeat_interleave(batch.batch_size // 8)
            start = time.perf_counter()
            out = model.velocity(batch, tt)
            out.pow(2).mean().backward()
            times[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    res = {k: 1000 * statistics.median(v[1:]) for k, v in times.items()}
    base = res["independent views, camera=plucker"]
    for k, v in res.items():
        print(f"  {k:40s} {v:8.1f} ms/step   ratio to independent views {v / base:.2f}x")
    return res


FIGURE_METRICS = ("adherence", "ssim", "silhouette_iou", "consistency")


def figure(report: dict, setting: str = "4 views", note: str = "") -> tuple:
    """Grouped bars: for each trained run (named after its camera encoding), the checker's scores on
    ``setting``, beside the ground-truth renders' (the checker's ceiling) and adherence's chance level."""
    from plotting import bar_plot

    groups: dict[str, dict[str, float]] = {}
    for run, settings in report.items():
        if not isinstance(settings, dict) or setting not in settings:
            continue
        if "truth (renders)" not in groups and f"{setting} (truth)" in settings:
            truth = settings[f"{setting} (truth)"]
            groups["truth (renders)"] = {m: truth[m] for m in FIGURE_METRICS if m in truth}
        scores = settings[setting]
        groups[Path(run).name] = {m: scores[m] for m in FIGURE_METRICS if m in scores}
    if not groups:
        raise ValueError(f"no run in the report has the setting {setting!r}")
    chance = next(iter(r[setting].get("chance") for r in report.values() if isinstance(r, dict) and setting in r))
    return bar_plot(
        groups, "multiview_camera_encodings", title=f"multi-view checkers per camera encoding ({setting})",
        ylabel="score", baseline=chance, baseline_label="adherence chance", note=note,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=[], help="trained run folders of recipes/multiview/*.yaml")
    ap.add_argument("--num", type=int, default=16, help="held-out captions per setting")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the recipe's)")
    ap.add_argument("--repeats", type=int, default=6, help="timed training steps per runner")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="skip the step timing")
    ap.add_argument("--no-eight", action="store_true", help="score 4 views only (no 8-view settings)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", action="store_true", help="also draw the scores per camera encoding")
    ap.add_argument("--plot-from", type=Path, default=None, help="only draw the figure of a --json report")
    args = ap.parse_args()
    if args.plot_from:
        saved = json.loads(args.plot_from.read_text())
        print("figure:", *figure(saved, note=saved.get("note", "")))
        return
    torch.set_num_threads(args.threads)
    report: dict[str, object] = {"threads": args.threads}
    print(
        ""
        if args.no_speed
        else f"speed: tiny trunk (dim 128, 3 layers), batch 8 x 4 views of 32x32, patch 4, {args.threads} thread(s)"
    )
    if not args.no_speed:
        report["speed_ms"] = speed(args.repeats)
    if not args.speed_only:
        for run in args.runs:
            print(f"quality: {run}")
            report[str(run)] = quality(Path(run), args.num, args.steps, eight=not args.no_eight)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot and args.runs:
        print("figure:", *figure(report, note=f"benchmarks/multiview.py, {args.num} held-out captions"))


if __name__ == "__main__":
    main()

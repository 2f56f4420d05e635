"""Multi-view generation: camera encodings side by side, 4 -> 8 views, and the cost of joint attention.

    python benchmarks/multiview.py --runs runs/multiview_scenes_tiny runs/multiview_scenes_tiny_matrix
    python benchmarks/multiview.py --speed-only

Quality (for every trained run given, EMA weights, the recipe's sampling settings): generate the views of the
first ``--num`` held-out captions at the poses of their ground-truth renders and score them with the dataset's
checker (adherence, PSNR, SSIM, silhouette IoU against the truth; leave-one-out visual-hull consistency
without it). For a model conditioned on a given first view (``given_views: 1``, e.g.
``recipes/multiview/views_from_image_16px.yaml``) the given view is the true render's and only the generated
views are scored; a trivial peer, "every view a copy of the given one", is scored beside it. Then the same captions with 8 views on a finer orbit (the 4 training poses and the 4 between
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


def _copy_given(items: list[dict], given: int) -> list[torch.Tensor]:
    """The trivial answer to image-to-multi-view: every view a copy of the (first) given view, at its pose."""
    out = []
    for it in items:
        x = it["sample"].clone()
        x[given:, :3] = x[:1, :3]
        out.append(x)
    return out


def quality(run: Path, num: int, steps: int | None, eight: bool = True) -> dict[str, dict[str, float]]:
    from omegaconf import OmegaConf

    from lumina_core.sampling import generate
    from lumina_core.training.api import load_run
    from lumina_modalities.multiview import MultiviewScenes

    loaded = load_run(OmegaConf.load(run / "config.yaml"), run / "checkpoints" / "last", device="cpu")
    model, run_task = loaded.model, loaded.task()
    task = run_task.config
    plugin, enc = run_task.plugin, run_task.conditioner
    kw = run_task.sampling_settings(steps=steps or None)
    val4 = run_task.dataset("val")
    p = dict(getattr(val4, "dataset", val4).__dict__)  # the dataset inside the skip-and-count wrapper
    data8 = MultiviewScenes(
        views=8, size=p["size"], max_objects=p["max_objects"], condition=p["condition"], elevation=p["elevation"],
        elevation_jitter=p["elevation_jitter"], radius=p["radius"], fov=p["fov"], length=p["length"],
        seed=p["seed"], split="val",
    )  # fmt: skip
    given = int(getattr(plugin, "given_views", 0))
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
                settings=(kw.with_overrides(rope_scaling=rope) if rope else kw).with_seed(kw.seed + start),
            )  # fmt: skip
        # plugin.evaluate grades the generated views only (with a given view, the others)
        out[label] = plugin.evaluate([s.float() for s in samples], items, data)
        if label != "8 views, PI on the view axis":
            out[label + " (truth)"] = plugin.evaluate([it["sample"] for it in items], items, data)
            if given:
                out[label + " (copy of the given view)"] = plugin.evaluate(_copy_given(items, given), items, data)
        print(
            f"  {run.name} {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[label].items()), flush=True
        )
    return out


def paired(runs: list[Path], num: int, steps: int | None) -> dict[str, dict[str, float]]:
    """Per held-out item, PSNR, SSIM and silhouette IoU of the generated views (same items, same noise seeds
    for every run), and each run's mean difference from the last run (the baseline, e.g. ``camera=none``)
    with its standard error over items: whether a gap between encodings is more than sampling noise."""
    from omegaconf import OmegaConf

    from lumina_core.sampling import generate
    from lumina_core.training.api import load_run
    from lumina_modalities.multiview.metrics import iou, psnr, silhouette, ssim, to01
    from lumina_modalities.multiview.plugin import cameras_of
    from lumina_modalities.multiview.render import Scene, render

    per_run: dict[str, dict[str, torch.Tensor]] = {}
    for run in runs:
        loaded = load_run(OmegaConf.load(run / "config.yaml"), run / "checkpoints" / "last", device="cpu")
        model, task = loaded.model, loaded.task()
        plugin, kw = task.plugin, task.sampling_settings(steps=steps or None)
        val = task.dataset("val")
        data = getattr(val, "dataset", val)  # the dataset inside the skip-and-count wrapper
        given = int(getattr(plugin, "given_views", 0))
        items = [data[i] for i in range(min(num, len(data)))]
        rows: dict[str, list[float]] = {"psnr": [], "ssim": [], "silhouette_iou": []}
        for start in range(0, len(items), 8):
            chunk = items[start : start + 8]
            out = generate(model, plugin, task.conditioner, task.name, [it["condition"] for it in chunk],
                           shapes=[plugin.sample_shape(it["sample"]) for it in chunk],
                           settings=kw.with_seed(kw.seed + start))  # fmt: skip
            for s, it in zip(out, chunk, strict=True):
                scene = Scene.from_dict(json.loads(it["meta"]["scene"]))
                gen = to01(s.float())[given:]
                h, w = gen.shape[-2:]
                truth = render(scene, cameras_of(s.float(), 3)[given:], h, w, data.fov, supersample=2)["rgb"]
                rows["psnr"].append(float(psnr(gen, truth).mean()))
                rows["ssim"].append(float(ssim(gen, truth).mean()))
                rows["silhouette_iou"].append(float(iou(silhouette(gen), silhouette(truth)).mean()))
        per_run[run.name] = {k: torch.tensor(v) for k, v in rows.items()}
    base_name = runs[-1].name
    base = per_run[base_name]
    report: dict[str, dict[str, float]] = {}
    for name, rows in per_run.items():
        report[name] = {}
        for k, v in rows.items():
            d = v - base[k]
            report[name][k] = float(v.mean())
            report[name][f"{k} - {base_name}"] = float(d.mean())
            report[name][f"{k} - {base_name} (s.e.)"] = float(d.std() / len(d) ** 0.5) if len(d) > 1 else 0.0
        print(f"  {name}: " + ", ".join(
            f"{k} {rows[k].mean():.3f} ({report[name][f'{k} - {base_name}']:+.3f} +- "
            f"{report[name][f'{k} - {base_name} (s.e.)']:.3f} vs {base_name})" for k in rows), flush=True)  # fmt: skip
    return report


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
    ap.add_argument("--paired", action="store_true",
                    help="per-item PSNR / SSIM / silhouette IoU of each run against the last run, with standard errors")
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
    if args.paired:
        print(f"paired: {args.num} held-out items, differences from {args.runs[-1]}")
        report["paired"] = paired([Path(r) for r in args.runs], args.num, args.steps)
    elif not args.speed_only:
        for run in args.runs:
            print(f"quality: {run}")
            report[str(run)] = quality(Path(run), args.num, args.steps, eight=not args.no_eight)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot and args.runs:
        print("figure:", *figure(report, note=f"benchmarks/multiview.py, {args.num} held-out captions"))


if __name__ == "__main__":
    main()

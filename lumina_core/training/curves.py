"""Loss curves as files, for people without TensorBoard: ``<run_dir>/curves/loss.{png,svg,csv}``.

At the end of every training run (a resumed one too) :class:`LossCurves` reads back the scalars the run
logged to its TensorBoard folder (``<run_dir>/tb``: ``train/loss`` and ``train/loss_<task>``, every
``train.log_every`` steps, across all resumes) and draws one panel per task - the raw values and a moving
average over ``window`` logged points - plus the weighted total when there are several tasks. The same
numbers go to ``loss.csv`` (one row per logged step), so the curve can be redrawn with any tool.

Where a resume re-runs steps (it restarted from an older checkpoint), the values logged last win.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

TOTAL = "train/loss"
TASK_PREFIX = "train/loss_"


def read_losses(tb_dir: str | Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of the loss scalars in a TensorBoard folder (all its event files; for a step
    logged twice, the later write wins)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = Path(tb_dir)
    if not tb_dir.is_dir():
        return {}
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags().get("scalars", []):
        if tag == TOTAL or tag.startswith(TASK_PREFIX):
            events = sorted(acc.Scalars(tag), key=lambda e: e.wall_time)
            out[tag] = {int(e.step): float(e.value) for e in events}
    return out


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def write_curves(
    losses: Mapping[str, Mapping[int, float]], out_dir: str | Path, window: int = 10
) -> list[Path]:
    """Write ``loss.csv``, ``loss.png`` and ``loss.svg`` for ``{tag: {step: value}}`` into ``out_dir``; return
    the paths (none when nothing was logged)."""
    tasks = sorted(t[len(TASK_PREFIX) :] for t in losses if t.startswith(TASK_PREFIX))
    panels = [(name, losses[TASK_PREFIX + name]) for name in tasks]
    if TOTAL in losses and (len(tasks) != 1 or not panels):
        panels.append(("total (weighted)", losses[TOTAL]))
    panels = [(name, series) for name, series in panels if series]
    if not panels:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tags = sorted(losses)
    steps = sorted({s for series in losses.values() for s in series})
    csv_path = out / "loss.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *tags])
        for s in steps:
            w.writerow([s, *(f"{losses[t][s]:.6g}" if s in losses[t] else "" for t in tags)])

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "lumina"
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, series) in zip(axes.flat, panels, strict=False):
        xs = sorted(series)
        ys = [series[s] for s in xs]
        ax.plot(xs, ys, color="C0", alpha=0.35, linewidth=0.9, label="logged")
        ax.plot(xs, moving_average(ys, window), color="C0", linewidth=1.8, label=f"mean of {window}")
        if min(ys) > 0 and max(ys) > 10 * min(ys):  # log only when the loss falls by a decade or more
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("training loss per task", fontsize=11)
    fig.tight_layout()
    png, svg = out / "loss.png", out / "loss.svg"
    fig.savefig(png, dpi=120, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [csv_path, png, svg]


class LossCurves(L.Callback):
    """At the end of training, write the run's loss curves to ``<run_dir>/curves/`` (see the module doc).
    Never fails the run: a problem drawing them is logged as a warning."""

    def __init__(self, run_dir: str | Path, window: int = 10) -> None:
        self.run_dir, self.window = Path(run_dir), int(window)
        self.written: list[Path] = []

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        if not trainer.is_global_zero:
            return
        try:
            writer = getattr(trainer.logger, "experiment", None)
            if writer is not None and hasattr(writer, "flush"):
                writer.flush()
            log_dir = getattr(trainer.logger, "log_dir", None) or self.run_dir / "tb"
            self.written = write_curves(read_losses(log_dir), self.run_dir / "curves", self.window)
        except Exception as exc:  # noqa: BLE001 - curves are a convenience; the trained run must stand
            log.warning(
                "could not write loss curves to %s: %s: %s", self.run_dir / "curves", type(exc).__name__, exc
            )

"""One helper every benchmark calls to draw its table as a figure, written as PNG and SVG side by side.

    from plotting import bar_plot, line_panels, line_plot   # benchmarks/ is on sys.path when one runs
    line_plot({"euler": (nfes, errors), ...}, "sampling_error_vs_nfe",
              title="RMS error vs NFE", xlabel="NFE", ylabel="RMS error", logy=True)
    bar_plot({"forward": 1.31, "forward+backward": 1.27}, "backbone_speed_ratio",
             title="ours / diffusers", ylabel="speed ratio", baseline=1.0)
    line_panels({"uniform": {"euler": (nfes, e1), "ab2": (nfes, e2)}, "shift(4)": {...}}, "errors_by_grid",
                title="...", xlabel="NFE", ylabel="RMS error", logy=True)   # one panel per grid

Each call writes ``<out_dir>/<stem>.png`` and ``<out_dir>/<stem>.svg`` (default ``out_dir``:
``docs/images/benchmarks/``, the folder docs/benchmarks.md links to) and returns both paths. Files are
reproducible: the SVG carries no date and a fixed id salt, so re-running a benchmark with the same numbers
does not change them. matplotlib is imported lazily with the non-interactive Agg backend (no display needed).

Plain data in, files out: a benchmark passes the numbers it already printed in its table; nothing here
measures anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: where the figures shown by docs/benchmarks.md live
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "docs" / "images" / "benchmarks"

Series = tuple[Sequence[float], Sequence[float]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "lumina"  # stable element ids in the SVG
    plt.rcParams["svg.fonttype"] = "none"  # text stays text (small, searchable files)
    return plt


def save_figure(fig: Any, stem: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``fig`` as ``<out_dir>/<stem>.png`` (150 dpi) and ``.svg`` (cropped to what is drawn); close it;
    return both paths."""
    if not stem or "/" in stem or "\\" in stem:
        raise ValueError(f"stem must be a plain file name without a suffix or folder, got {stem!r}")
    out = Path(out_dir) if out_dir is not None else DEFAULT_DIR
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return png, svg


def _check_series(series: Mapping[str, Series]) -> None:
    if not series:
        raise ValueError("nothing to plot: expected at least one series {label: (xs, ys)}, got none")
    for label, (xs, ys) in series.items():
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values but {len(ys)} y values")


def line_plot(
    series: Mapping[str, Series],
    stem: str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    note: str | None = None,
    out_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """One line per series (``{label: (xs, ys)}``, markers on the measured points; non-finite y values are
    left out, e.g. a cell the table leaves empty). ``hlines``: labelled horizontal reference lines (a peer's
    figure, a target). ``styles``: extra matplotlib keyword arguments per label (e.g. ``{"linestyle": "--"}``
    to tell fitted grids from closed-form ones). ``note``: a small line under the axes (the command and the
    machine). Returns the PNG and SVG paths."""
    _check_series(series)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    _draw_lines(ax, series, hlines, styles, logx, logy)
    _decorate(ax, fig, title, xlabel, ylabel, note, legend=len(series) + len(hlines or {}) > 1)
    return save_figure(fig, stem, out_dir)


def line_panels(
    panels: Mapping[str, Mapping[str, Series]],
    stem: str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    note: str | None = None,
    columns: int = 2,
    out_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """Several :func:`line_plot` panels on shared axes, one per key of ``panels`` (e.g. one per time grid,
    one line per solver), for tables with too many rows for one plot. A label keeps its colour in every
    panel; ``hlines`` are drawn in each panel. Returns the PNG and SVG paths."""
    if not panels:
        raise ValueError("nothing to plot: expected {panel: {label: (xs, ys)}}, got no panels")
    for series in panels.values():
        _check_series(series)
    plt = _pyplot()
    labels: list[str] = []
    for series in panels.values():
        labels += [k for k in series if k not in labels]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {k: cycle[i % len(cycle)] for i, k in enumerate(labels)}
    cols = max(1, min(int(columns), len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), sharex=True, sharey=True, squeeze=False
    )
    for ax, (name, series) in zip(axes.flat, panels.items(), strict=False):
        st = {k: {"color": colours[k], **dict((styles or {}).get(k, {}))} for k in series}
        _draw_lines(ax, series, hlines, st, logx, logy)
        ax.set_title(name, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if logx:  # the axes are shared: label every x measured in any panel
        xs = sorted({float(x) for series in panels.values() for xs_, _ in series.values() for x in xs_})
        _plain_log_ticks(axes.flat[0], xs)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel)
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    height = fig.get_figheight()  # place title and legend in inches, so tall and short figures look alike
    ncol = min(len(names), 6)
    fig.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    fig.legend(
        handles,
        names,
        fontsize=8,
        frameon=False,
        loc="upper center",
        ncol=ncol,
        bbox_to_anchor=(0.5, 1 - 0.38 / height),
    )
    top = 1 - (0.3 + 0.2 * math.ceil(len(names) / ncol)) / height
    if note:
        fig.text(0.01, 0.005, note, fontsize=6.5, color="0.35", ha="left", va="bottom")
    lines = note.count("\n") + 1 if note else 0  # a long note comes wrapped: room for each line
    fig.tight_layout(rect=(0, (0.15 + 0.1 * lines) / height if note else 0, 1, top))
    return save_figure(fig, stem, out_dir)


def _draw_lines(
    ax: Any,
    series: Mapping[str, Series],
    hlines: Mapping[str, float] | None,
    styles: Mapping[str, Mapping[str, Any]] | None,
    logx: bool,
    logy: bool,
) -> None:
    for label, (xs, ys) in series.items():
        pts = [
            (float(x), float(y))
            for x, y in zip(xs, ys, strict=True)
            if y is not None and math.isfinite(float(y))
        ]
        if not pts:
            continue
        kw = {"marker": "o", "markersize": 3.5, "linewidth": 1.4, **dict((styles or {}).get(label, {}))}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **kw)
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(float(y), color="0.25", linestyle=(":", "--", "-.")[i % 3], linewidth=1.0, label=label)
    if logx:
        ax.set_xscale("log")
        _plain_log_ticks(ax, sorted({float(x) for xs, _ in series.values() for x in xs}))
    if logy:
        ax.set_yscale("log")


def _plain_log_ticks(ax: Any, xs: list[float]) -> None:
    """On a log x axis, label plain numbers (4, 8, 16 ...) instead of matplotlib's crowded ``3 x 10^0``:
    the measured x values themselves when there are at most 12, else round values in their range."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    xs = [x for x in xs if x > 0]
    if not xs:
        return
    if len(xs) > 12:
        nice = sorted({m * 10.0**e for e in range(-3, 7) for m in (1, 2, 3, 4, 5, 6, 8)})
        xs = [v for v in nice if min(xs) <= v <= max(xs)]
        while len(xs) > 12:
            xs = xs[::2]
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def bar_plot(
    values: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    stem: str,
    *,
    title: str,
    ylabel: str,
    xlabel: str = "",
    baseline: float | None = None,
    baseline_label: str | None = None,
    logy: bool = False,
    annotate: str = "{:.2f}",
    note: str | None = None,
    out_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """Bars: ``{category: value}`` (one bar each), or grouped ``{group: {category: value}}`` (one cluster
    per category, one colour per group - e.g. per-task scores of several runs). ``baseline``: a horizontal
    line (1.0 for a speed ratio, chance for a score). Each bar is labelled with its value via
    ``annotate`` (a format string; empty to leave values off). Returns the PNG and SVG paths."""
    if not values:
        raise ValueError(
            "nothing to plot: expected {category: value} or {group: {category: value}}, got none"
        )
    grouped = all(isinstance(v, Mapping) for v in values.values())
    if not grouped and any(isinstance(v, Mapping) for v in values.values()):
        raise ValueError("bar_plot values must be all numbers or all {category: value} mappings, not a mix")
    groups: dict[str, Mapping[str, float]] = dict(values) if grouped else {"": values}  # type: ignore[arg-type]
    cats: list[str] = []
    for g in groups.values():
        cats += [c for c in g if c not in cats]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.5, 0.9 * len(cats) * max(1, len(groups)) ** 0.5 + 2.5), 4.2))
    width = 0.8 / len(groups)
    for gi, (gname, g) in enumerate(groups.items()):
        xs = [ci + (gi - (len(groups) - 1) / 2) * width for ci, c in enumerate(cats) if c in g]
        ys = [float(g[c]) for c in cats if c in g]
        bars = ax.bar(xs, ys, width=width * 0.92, label=gname or None)
        if annotate:
            ax.bar_label(bars, labels=[annotate.format(y) for y in ys], fontsize=7, padding=2)
    ax.margins(y=0.08)  # room for the value labels above the tallest bar
    if baseline is not None:
        ax.axhline(float(baseline), color="0.25", linestyle="--", linewidth=1.0, label=baseline_label)
    long_names = max(map(len, cats)) > 10
    ax.set_xticks(
        range(len(cats)), cats, rotation=20 if long_names else 0, ha="right" if long_names else "center"
    )
    if logy:
        ax.set_yscale("log")
    legend = grouped and len(groups) > 1 or bool(baseline_label)
    _decorate(ax, fig, title, xlabel, ylabel, note, legend=legend, legend_outside=True)
    return save_figure(fig, stem, out_dir)


def _decorate(
    ax: Any,
    fig: Any,
    title: str,
    xlabel: str,
    ylabel: str,
    note: str | None,
    legend: bool,
    legend_outside: bool = False,
) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if legend and legend_outside:  # bars fill the axes: keep the legend off them, to the right
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend:
        ax.legend(fontsize=8, frameon=False, loc="best")
    if note:
        fig.text(0.01, 0.005, note, fontsize=6.5, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.045 if note else 0, 1, 1))

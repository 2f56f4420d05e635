"""benchmarks/plotting.py: every benchmark's figures, PNG + SVG, reproducible, with clear errors."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# matplotlib reads its configuration and writes its font cache under ~ unless told otherwise
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="lumina-test-mpl-"))

pytest.importorskip("matplotlib")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from plotting import bar_plot, line_panels, line_plot  # noqa: E402


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.size


def test_line_plot_writes_png_and_svg_with_the_labels(tmp_path):
    png, svg = line_plot(
        {"euler": ([4, 8, 16], [0.1, 0.05, 0.02]), "ab2": ([4, 8, 16], [0.05, float("nan"), 0.001])},
        "errors",
        title="RMS error vs NFE",
        xlabel="NFE",
        ylabel="RMS error",
        logy=True,
        hlines={"euler at 50 NFE": 3e-3},
        note="python benchmarks/x.py (2-core CPU)",
        out_dir=tmp_path,
    )
    assert (png, svg) == (tmp_path / "errors.png", tmp_path / "errors.svg")
    w, h = _png_size(png)
    assert w > 500 and h > 300
    text = svg.read_text()
    for label in ("euler", "ab2", "euler at 50 NFE", "RMS error vs NFE", "NFE", "2-core CPU"):
        assert label in text, label


def test_figures_are_reproducible(tmp_path):
    data = {"a": ([1, 2, 3], [3.0, 2.0, 1.0])}
    kw = dict(title="t", xlabel="x", ylabel="y")
    _, svg1 = line_plot(data, "one", out_dir=tmp_path / "1", **kw)
    _, svg2 = line_plot(data, "one", out_dir=tmp_path / "2", **kw)
    assert svg1.read_bytes() == svg2.read_bytes()
    _, svg3 = line_plot({"a": ([1, 2, 3], [3.0, 2.0, 1.5])}, "one", out_dir=tmp_path / "3", **kw)
    assert svg3.read_bytes() != svg1.read_bytes()  # the data is really drawn


def test_bar_plot_flat_grouped_and_panels(tmp_path):
    png, svg = bar_plot(
        {"forward": 1.31, "forward+backward": 1.27}, "ratio", title="ours / diffusers", ylabel="x",
        baseline=1.0, baseline_label="parity", out_dir=tmp_path,
    )  # fmt: skip
    assert png.is_file() and "1.31" in svg.read_text() and "parity" in svg.read_text()
    _, svg = bar_plot(
        {"run A": {"image": 0.7, "audio": 0.8}, "run B": {"image": 0.6, "music": 0.5}},
        "tasks", title="per task", ylabel="score", out_dir=tmp_path,
    )  # fmt: skip
    text = svg.read_text()
    assert all(s in text for s in ("run A", "run B", "image", "audio", "music", "0.50"))
    png, svg = line_panels(
        {g: {"euler": ([4, 8], [0.1, 0.05]), "rk4": ([4, 8], [0.05, 0.01])} for g in ("uniform", "shift(4)", "s")},
        "panels", title="by grid", xlabel="NFE", ylabel="err", logy=True, out_dir=tmp_path,
    )  # fmt: skip
    assert png.is_file() and all(s in svg.read_text() for s in ("uniform", "shift(4)", "rk4"))


def test_bad_input_is_a_clear_error(tmp_path):
    kw = dict(title="t", xlabel="x", ylabel="y", out_dir=tmp_path)
    with pytest.raises(ValueError, match="2 x values but 3 y values"):
        line_plot({"a": ([1, 2], [1, 2, 3])}, "bad", **kw)
    with pytest.raises(ValueError, match="at least one series"):
        line_plot({}, "bad", **kw)
    with pytest.raises(ValueError, match="plain file name"):
        line_plot({"a": ([1], [1])}, "sub/bad", **kw)
    with pytest.raises(ValueError, match="not a mix"):
        bar_plot({"a": 1.0, "b": {"c": 2.0}}, "bad", title="t", ylabel="y", out_dir=tmp_path)
    assert not list(tmp_path.iterdir())

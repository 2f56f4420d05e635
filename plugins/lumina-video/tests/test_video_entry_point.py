"""The plugin is a distribution of its own, found by the core only through its `lumina.plugins` entry point."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PLUGIN_ROOT.parents[1]


def _installed() -> md.Distribution | None:
    try:
        return md.distribution("lumina-video")
    except md.PackageNotFoundError:
        return None


def test_pyproject_declares_the_entry_point():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    meta = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "lumina-video"
    assert meta["project"]["entry-points"]["lumina.plugins"] == {"video": "lumina_video"}
    assert {"lumina", "torch", "pillow"} <= set(meta["project"]["dependencies"])


def test_built_distribution_carries_the_entry_point(tmp_path):
    """Build and install a copy into a throw-away --target, then read its metadata like the registry does."""
    src = tmp_path / "src"
    shutil.copytree(
        PLUGIN_ROOT, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", "tests")
    )
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 and "No module named pip" in proc.stderr:
        pytest.skip("pip is not available in this interpreter")
    assert proc.returncode == 0, proc.stderr
    dists = [d for d in md.distributions(path=[str(target)]) if d.metadata["Name"] == "lumina-video"]
    assert len(dists) == 1
    eps = [ep for ep in dists[0].entry_points if ep.group == "lumina.plugins"]
    assert [(ep.name, ep.value) for ep in eps] == [("video", "lumina_video")]


@pytest.mark.skipif(
    _installed() is None, reason="lumina-video is not installed (make setup installs plugins/*/ with pip -e)"
)
def test_installed_distribution_is_found_by_the_registry_without_importing_it_first():
    """In a fresh interpreter: importing the core does not import the plugin; asking for "video" does."""
    eps = [ep for ep in _installed().entry_points if ep.group == "lumina.plugins"]
    assert [(ep.name, ep.value) for ep in eps] == [("video", "lumina_video")]
    code = (
        "import sys\n"
        "import lumina_core, lumina_core.plugin, lumina_core.registry as r\n"
        "assert 'lumina_video' not in sys.modules, 'the core imported the plugin'\n"
        "cls = r.MODALITIES.get('video')\n"
        "assert 'lumina_video' in sys.modules\n"
        "assert cls.__module__.startswith('lumina_video'), cls.__module__\n"
        "assert 'moving_shapes' in r.DATASETS.names()\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr

"""One tiny trained run shared by the serve tests (trained once per session, in seconds)."""

from __future__ import annotations

import os
import tempfile

import pytest

# matplotlib reads its configuration and writes its font cache under ~ unless told otherwise
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="lumina-test-mpl-"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(cfg, run_dir)`` of the tiny two-task run of :mod:`fixtures.serve_run`, trained for 2 steps."""
    from fixtures.serve_run import train_tiny

    root = tmp_path_factory.mktemp("serve")
    os.environ.setdefault("LUMINA_CACHE_DIR", str(root / "cache"))
    run_dir = root / "run"
    return train_tiny(run_dir), run_dir

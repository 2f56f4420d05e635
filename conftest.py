"""Test-session set-up shared by ``tests/`` and ``plugins/*/tests``: a fresh machine's caches.

Every cache a test (or a process it starts) could read or write points into one empty temporary folder made
for this session, so the suite never touches the user's home and always exercises the cold path, as on a
fresh machine or in CI. Set ``LUMINA_TEST_KEEP_CACHE=1`` to keep an existing ``LUMINA_CACHE_DIR`` instead
(faster local re-runs; CI never does).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# tests share helpers through the package tests/fixtures (imported as ``fixtures``), never by importing one
# another (tests/core/test_test_layout.py holds the suite to that)
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

# pytest fixtures shared across folders (a tiny Gemma and BERT saved as local models)
pytest_plugins = ["fixtures.text_encoders"]

_SESSION_DIR: str | None = None


def pytest_configure(config) -> None:
    global _SESSION_DIR
    _SESSION_DIR = tempfile.mkdtemp(prefix="lumina-test-cache-")
    env = {
        "XDG_CACHE_HOME": os.path.join(_SESSION_DIR, "xdg-cache"),
        "XDG_CONFIG_HOME": os.path.join(_SESSION_DIR, "xdg-config"),
        "MPLCONFIGDIR": os.path.join(_SESSION_DIR, "matplotlib"),
        "HF_HOME": os.path.join(_SESSION_DIR, "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NUMBA_CACHE_DIR": os.path.join(_SESSION_DIR, "numba"),
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(_SESSION_DIR, "inductor"),
    }
    if not (os.environ.get("LUMINA_TEST_KEEP_CACHE") and os.environ.get("LUMINA_CACHE_DIR")):
        env["LUMINA_CACHE_DIR"] = os.path.join(_SESSION_DIR, "lumina")
    os.environ.update(env)


def pytest_unconfigure(config) -> None:
    if _SESSION_DIR:
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)

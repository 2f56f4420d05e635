"""Stress test of the trunk's hand-written kernels under glibc's heap checker (issue #11).

The child (``kernels_stress_child.py``) runs ``linear``, ``split_linear`` and ``swiglu`` on every pairing of
tiny and odd widths (1 to 17) with contiguous, transposed, strided and broadcast operands and upstream
gradients, the hand-written RMSNorm and RoPE backward passes, and whole training steps of a tiny trunk on
4-wide tokens (grey 16x16 images with patch 2, in miniature), comparing the oneDNN route with the plain
PyTorch route in fp32 and, where oneDNN has bf16, under bf16 autocast. It runs in a subprocess with
``MALLOC_CHECK_=3 MALLOC_PERTURB_=165`` (and glibc's ``libc_malloc_debug.so`` preloaded, which glibc >= 2.34
needs for those variables to act), so a kernel that writes past a heap block aborts the child
(SIGABRT) instead of corrupting the test runner, and one that reads freed memory reads the perturbation
byte and fails the comparison.
"""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("kernels_stress_child.py")
MALLOC_DEBUG = ("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "/lib64/libc_malloc_debug.so.0")


def heap_checked_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MALLOC_CHECK_": "3",
        "MALLOC_PERTURB_": "165",
        "OMP_NUM_THREADS": "1",
        "LUMINA_CACHE_DIR": str(tmp_path / "cache"),
        "LUMINA_LINEAR_BACKEND": "onednn",
    }
    debug = next((p for p in MALLOC_DEBUG if Path(p).exists()), None)
    if debug is None and ctypes.util.find_library("c_malloc_debug"):
        debug = ctypes.util.find_library("c_malloc_debug")
    if debug:
        env["LD_PRELOAD"] = " ".join(filter(None, (os.environ.get("LD_PRELOAD"), debug)))
    return env


def run_child(args: list[str], tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=heap_checked_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[3],
    )


def describe(run: subprocess.CompletedProcess) -> str:
    how = (
        f"killed by {signal.Signals(-run.returncode).name}"
        if run.returncode < 0
        else f"exit {run.returncode}"
    )
    return f"child {how}\n--- stdout\n{run.stdout[-4000:]}\n--- stderr\n{run.stderr[-4000:]}"


def test_heap_checker_catches_an_out_of_bounds_write(tmp_path):
    """The harness can fail: one float written past a freshly allocated block aborts the child."""
    code = (
        "import ctypes, torch\n"
        "t = torch.empty(37)\n"
        "ctypes.memset(t.data_ptr() + 37 * 4, 0x5a, 4)  # one float past the end\n"
        "del t\n"
        "torch.empty(1000).fill_(1)\n"
        "print('survived')\n"
    )
    run = run_child(["-c", code], tmp_path, timeout=120)
    if run.returncode == 0:
        pytest.skip("this libc does not check heap blocks on free (no MALLOC_CHECK_ support)")
    assert run.returncode == -signal.SIGABRT, describe(run)


def test_kernels_survive_the_heap_checker_and_match_the_plain_route(tmp_path):
    run = run_child([str(CHILD)], tmp_path)
    assert run.returncode == 0, describe(run)
    assert "kernels-stress OK" in run.stdout, describe(run)

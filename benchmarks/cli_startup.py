"""How long `lumina --help` takes to answer, against the interpreter's own start-up.

    python benchmarks/cli_startup.py [--repeat 10]

Runs each command ``--repeat`` times in a fresh process and prints the median and best wall times:
``python -c pass`` (the floor), ``lumina --help``, ``lumina plugins list --no-load`` (reads the entry points,
imports no plugin) and, for scale, ``python -c "import torch"`` (what the CLI must not pay to print its help).
Uses the installed ``lumina`` script when there is one, else ``python -m lumina_core.cli``. Timings depend on
the machine's load; compare the rows of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_times(cmd: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env, cwd=ROOT
        )
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true", help="skip the `import torch` reference row")
    parser.add_argument(
        "--plot-dir", default=None, help="where the figure goes (default docs/images/benchmarks)"
    )
    args = parser.parse_args()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    script = shutil.which("lumina") or (
        str(Path(sys.executable).parent / "lumina")
        if (Path(sys.executable).parent / "lumina").exists()
        else None
    )
    lumina = [script] if script else [sys.executable, "-m", "lumina_core.cli"]
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("lumina --help", [*lumina, "--help"]),
        ("lumina plugins list --no-load", [*lumina, "plugins", "list", "--no-load"]),
    ]
    if not args.no_torch:
        rows.append(("python -c 'import torch'", [sys.executable, "-c", "import torch"]))

    print(f"command: {' '.join(lumina)}; {args.repeat} runs each; {os.cpu_count()} CPUs")
    print(f"{'':32s} {'median s':>9s} {'best s':>9s} {'median - python':>16s}")
    base = None
    medians, bests = {}, {}
    for label, cmd in rows:
        t = wall_times(cmd, args.repeat, env)
        med = statistics.median(t)
        base = med if base is None else base
        medians[label], bests[label] = med, min(t)
        print(f"{label:32s} {med:9.3f} {min(t):9.3f} {med - base:16.3f}")

    from plotting import bar_plot  # benchmarks/plotting.py

    paths = bar_plot(
        {"median": medians, "best": bests},
        "cli_startup",
        title="start-up time of the lumina command vs the interpreter and `import torch`",
        ylabel="wall time (s)",
        annotate="{:.2f}",
        note=f"benchmarks/cli_startup.py --repeat {args.repeat}; {os.cpu_count()} CPUs, machine shared",
        out_dir=args.plot_dir,
    )
    print("figure:", *paths)


if __name__ == "__main__":
    main()

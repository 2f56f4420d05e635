"""Which process of a data-parallel run this is, before the trainer starts (where only the launcher's
environment variables say it); closing the process group; and, when a rank dies mid-run, which one it was
and the command that continues the run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from lumina_core.errors import LuminaError


class RankLost(LuminaError):
    """A rank of a data-parallel run died (killed, out of memory, its node lost): the others cannot go on."""


def launch_rank() -> int:
    """0 exactly for the process that is (or will be) global rank 0, as the launcher's environment says before
    the trainer starts (torchrun / SLURM: ``RANK`` / ``SLURM_PROCID``; Lightning's own launcher: ``NODE_RANK``
    and ``LOCAL_RANK``, whose sum is 0 only on rank 0); the process a user started is 0."""

    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1:
        return int(os.environ["SLURM_PROCID"])
    return int(os.environ.get("LOCAL_RANK", 0)) + int(os.environ.get("NODE_RANK", 0))


def close_process_group(synchronise: bool) -> None:
    """Destroy ``torch.distributed``'s process groups on this rank before the interpreter exits.

    PyTorch asks every process to call ``destroy_process_group()`` once communication is over: a gloo group
    left for interpreter finalisation may still have worker threads running when it is destroyed, and the
    process then aborts ("terminate called without an active exception", SIGABRT) after a run that
    succeeded. With ``synchronise`` every rank first waits for the others (a barrier), so no rank leaves
    while another still talks to it; without it (a rank that is failing) the group is only closed. Nothing
    happens in a single-process run."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if synchronise:
        dist.barrier()
    dist.destroy_process_group()


#: how a collective says its peer is gone (gloo's TCP pairs, NCCL, the c10d store), in the exception's text
_LOST_PEER_TEXT = (
    "Connection reset by peer", "Connection closed by peer", "Broken pipe", "Connection refused",
    "Socket Timeout", "NCCL communicator was aborted", "remote process exited or there was a network error",
)  # fmt: skip


def is_lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) is a collective that failed because another rank is gone."""
    import torch.distributed as dist

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, getattr(dist, "DistNetworkError", ())) or any(t in str(exc) for t in _LOST_PEER_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def dead_ranks(launcher: Any, wait_s: float = 2.0) -> list[tuple[int, int]]:
    """``(rank, exit status)`` of the ranks this process started (Lightning's launcher: its children are local
    ranks 1, 2, ...) that have ended with a failure; waits up to ``wait_s`` for a dying one to be reaped.
    Empty where this process started none (torchrun, SLURM: the launcher knows, not rank 0)."""
    import time

    procs = list(getattr(launcher, "procs", None) or [])
    node = int(os.environ.get("NODE_RANK", 0)) * (len(procs) + 1)
    deadline = time.monotonic() + wait_s
    while True:
        dead = [(node + i + 1, p.returncode) for i, p in enumerate(procs) if p.poll() not in (None, 0)]
        if dead or not procs or time.monotonic() >= deadline:
            return dead
        time.sleep(0.1)


def exit_status_text(code: int) -> str:
    """``-9`` -> ``"killed by SIGKILL"``; ``2`` -> ``"exit status 2; its own message is above"``."""
    import signal

    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}; its own message is above"


def resume_command(argv: list[str] | None = None) -> str:
    """The command that continues this run: the ``lumina train`` command line it was started with, without
    ``--resume DIR`` / ``--overwrite``, plus ``--resume last`` (a generic form when not started that way)."""
    import shlex
    import sys

    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 3 or os.path.basename(argv[0]) not in ("lumina", "__main__.py") or argv[1] != "train":
        return "lumina train RECIPE [KEY=VALUE ...] --resume last"
    kept, skip = [], False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif arg != "--overwrite" and not arg.startswith("--resume="):
            kept.append(arg)
    return shlex.join(["lumina", "train", *kept, "--resume", "last"])


_reported = threading.Lock()  # held by whichever of the main thread and the launcher's watcher speaks first


def claim_report() -> bool:
    """True exactly once per process: the caller says why the run ended; everyone else stays quiet."""
    return _reported.acquire(blocking=False)


def speak_before_the_launcher_kills(describe: Callable[[list[tuple[int, int]]], str]) -> bool:
    """Let Lightning's watcher of the child ranks say which rank died before it ends the run.

    Lightning's launcher (rank 0 of a run it started) watches its children from a thread every 5 s; when one
    has failed it SIGKILLs the others and rank 0 itself, so rank 0 may die before its own failed collective
    reports anything (and where a collective hangs on a dead peer, only the watcher can tell). This wraps
    the watcher's termination: it prints ``describe(dead ranks)`` as the run's one-paragraph error, kills the
    children as before and ends this process with exit status 2 - unless the main thread has already claimed
    the report (:func:`claim_report`), which then ends the run itself. Returns whether a watcher was found."""
    import signal
    import sys

    watcher = next((t for t in threading.enumerate() if t.name == "child-process-observer"), None)
    children = getattr(watcher, "_child_processes", None)
    if watcher is None or children is None or not hasattr(watcher, "_terminate_all"):
        return False

    def terminate_all() -> None:
        if not claim_report():
            return  # the main thread is saying it and ending the run
        dead = [(i + 1, p.returncode) for i, p in enumerate(children) if p.returncode]
        print(f"lumina train: error: {describe(dead)}", file=sys.stderr, flush=True)
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        os._exit(RankLost.exit_code)

    watcher._terminate_all = terminate_all
    return True

"""One writer per run folder: a lock that a training run holds on its folder for as long as it runs.

The lock is the file ``<run_dir>/.lumina-lock``, held with ``fcntl.flock(LOCK_EX | LOCK_NB)``. The kernel
drops a flock when the process that holds it ends, however it ends (``kill -9``, an out-of-memory kill, a
crash), so a lock never outlives its run and no guess about process ids is needed to tell a live holder from
a dead one. The file's text names the holder (process id, host, command, start time): a second run is
refused with those, and a run that finds the lock free but the file still naming someone knows that run
died without releasing it (a clean release empties the file) and takes the lock over, saying so.

The file itself is never deleted: removing a lock file while others may have it open lets two processes
lock two different files under one name. The lock is advisory: it stops a second ``lumina train`` (or
``train()``), not other programs writing into the folder. It needs a file system with ``flock`` (local
disks, NFSv4 on Linux); where locking is not supported the run goes on with a warning.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from lumina_core.errors import LuminaError

LOCK_FILE = ".lumina-lock"


class RunFolderLocked(LuminaError):
    """Another live process holds the run folder's lock (``lumina train`` into a folder in use)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a run folder's lock, as written in the lock file."""

    pid: int
    host: str
    command: str
    started: str

    @classmethod
    def this_process(cls) -> LockHolder:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
        return cls(os.getpid(), socket.gethostname(), shlex.join(argv), time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started}, command `{self.command}`"


class RunLock:
    """The lock on ``run_dir``: :meth:`acquire` it before writing anything there, :meth:`release` it at the
    end (also a context manager)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> LockHolder | None:
        """Take the lock, or raise :class:`RunFolderLocked` naming the process that holds it.

        Returns the holder recorded by a run that died while holding the lock (now taken over), else None."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock
            warnings.warn("no flock on this platform: the run folder is not locked against a second run", stacklevel=2)
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = holder.describe() if holder else "another process (it has not written its name yet)"
            raise RunFolderLocked(
                f"{self.run_dir} is in use by another training run: {who}. Only one run may write into a run "
                f"folder at a time. Wait for it to finish or stop it, or train into another folder with "
                f"run.output_dir=... (or run.name=...); the lock is {self.path}"
            ) from None
        except OSError as exc:  # a file system without locks (ENOLCK, EOPNOTSUPP)
            os.close(fd)
            warnings.warn(
                f"cannot lock {self.path} ({exc.strerror}): a second run into {self.run_dir} would not be "
                "stopped",
                stacklevel=2,
            )
            return None
        left_behind = _read_holder(fd)
        record = (json.dumps(asdict(LockHolder.this_process())) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        self._fd = fd
        return left_behind

    def release(self) -> None:
        """Empty the lock file (a clean end) and drop the lock; nothing happens if it is not held."""
        if self._fd is None:
            return
        import fcntl

        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> LockHolder | None:
    """The holder recorded in an open lock file; None for an empty (released) or unreadable one."""
    try:
        data = os.pread(fd, 64 * 1024, 0)
        fields = json.loads(data.decode()) if data.strip() else None
        return LockHolder(**fields) if isinstance(fields, dict) else None
    except (OSError, ValueError, TypeError):
        return None

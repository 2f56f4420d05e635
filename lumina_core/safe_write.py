"""Files written whole or not at all, and a full disk said in one paragraph.

:func:`write_atomic` writes a report (``data_report.json``, ``metrics.json``, ``config.yaml``) into a hidden
temporary file beside it, flushes it to disk, then renames it over the old one (``os.replace``, atomic on
POSIX): a full disk, a kill or a crash mid-write leaves the previous report as it was, never an empty or
half-written one, and the temporary file is removed.

:class:`DiskFull` is the expected failure for a file that could not be written because its file system is
full (``ENOSPC``) or the user's quota is spent (``EDQUOT``): it names the file, the space the write needed
and the space free there. Libraries that write from native code do not always raise an ``OSError`` for it
(safetensors raises its own error whose text ends in "No space left on device (os error 28)"):
:func:`is_out_of_space` recognises both.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from lumina_core.errors import LuminaError

#: errno values that mean "no room": the file system is full, or the user's quota is spent
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: how native writers (Rust's std::io, C's strerror) spell the same errors in their messages
_OUT_OF_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")


class DiskFull(LuminaError):
    """A file could not be written: no space left (or the quota spent) where it goes."""


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full or the quota spent."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE:
            return True
        if any(text in str(exc) for text in _OUT_OF_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def free_bytes(path: str | Path) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (its nearest existing parent), or None."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def human_bytes(n: int | None) -> str:
    """``12582912`` -> ``"12.0 MB"`` (powers of 1000, as ``df -H`` and file managers count)."""
    if n is None:
        return "an unknown amount"
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def disk_full(path: str | Path, needed: int | None, what: str, after: str = "") -> DiskFull:
    """The one-paragraph error for ``path`` that could not be written: ``what`` it was part of, the space the
    write ``needed`` (bytes, or None when not known) and the space free there; ``after`` says what was done
    about it and what to do next."""
    free = free_bytes(Path(path).parent)
    need = f"it needs about {human_bytes(needed)} and " if needed is not None else ""
    return DiskFull(
        f"could not write {path} ({what}): no space left on the device (or quota) that holds it; {need}"
        f"{human_bytes(free)} is free there. {after}".rstrip()
    )


def write_atomic(path: str | Path, data: str | bytes, what: str = "a report") -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, ``os.replace``); a full disk
    raises :class:`DiskFull` with ``path``'s previous content untouched and no temporary file left."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_out_of_space(exc):
            raise disk_full(
                path, len(raw), what, f"{path.name} was left as it was. Free some space and run again."
            ) from exc
        raise


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to the file descriptor ``fd`` (``os.write`` may write fewer at a time)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

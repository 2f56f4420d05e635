"""Output paths a command will write, checked before the work starts.

An evaluation that runs for an hour and then cannot write ``--json`` under a path whose parent is a file
loses its results; these checks refuse such a path at once, in one paragraph (a ValueError, exit 2). Nothing
is created here: the nearest existing ancestor of the path must be a writable folder (the command creates
the missing folders when it writes), and an existing target must be of the right kind and writable.
"""

from __future__ import annotations

import os
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_parent(path: Path, option: str) -> None:
    ancestor = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not ancestor.is_dir():
        raise ValueError(
            f"{option} {path}: {ancestor} is a file, not a folder, so nothing can be written under it; "
            "choose another path"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: the folder {ancestor} is not writable; choose another path")


def check_output_file(path: str | os.PathLike | None, option: str) -> None:
    """Refuse (ValueError) a file ``path`` that cannot be written: a folder there, a file in the way of its
    parent folders, or no write permission. None: nothing to check."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {p} is a folder; give a file name (e.g. {p / 'metrics.json'})")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{option} {p} exists and is not writable; choose another path")
    _check_parent(p, option)


def check_output_folder(path: str | os.PathLike | None, option: str) -> None:
    """Refuse (ValueError) a folder ``path`` that cannot be written into: a file there or in the way of its
    parent folders, or no write permission. None: nothing to check."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {p} is a file, not a folder; choose another path")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {p}: the folder is not writable; choose another path")
        return
    _check_parent(p, option)

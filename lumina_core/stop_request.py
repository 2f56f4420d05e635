"""SIGTERM as a request to stop at the next safe point, for work done in batches (``lumina sample``).

A scheduler (or ``kill``) sends SIGTERM and, after a grace period, SIGKILL. Python's default for SIGTERM ends
the process at once: no ``finally`` runs, so whatever was to be written at the end (a manifest) is never
written. Inside :class:`StopOnSigterm` a SIGTERM only sets :attr:`~StopOnSigterm.requested`; the work checks it
between batches, finishes what it is writing, records it, and stops (raising :class:`WorkStopped`, exit
status 143 = 128 + 15, so the job does not look finished). Training has its own handler (Lightning's).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from lumina_core.errors import LuminaError


class WorkStopped(LuminaError):
    """Work stopped by SIGTERM at a safe point; what was written so far is kept and recorded."""

    exit_code = 143


class StopOnSigterm:
    """A context in which SIGTERM sets :attr:`requested` instead of ending the process. Outside the main
    thread (where Python cannot install handlers) it changes nothing and ``requested`` stays False."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __enter__(self) -> StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False

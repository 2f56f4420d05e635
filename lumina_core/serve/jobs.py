"""One worker runs the page's requests one at a time; each request is a :class:`Ticket` that can be cancelled.

    queue = JobQueue(max_waiting=8)
    ticket = queue.submit(work, estimate_s=3.0, owner="browser-tab", deadline_s=120.0)
    ticket.wait(0.5); ticket.poll()               # the page asks for progress; a client that stops asking is gone
    queue.cancel(owner="browser-tab")              # the Cancel button

The model is one (CPU cores or one GPU), so requests run one after another. Waiting requests are taken in
the order of ``arrival + estimated seconds``: a small request that arrives while a large one waits goes
first, but never waits longer behind smaller ones than its own estimate (no request starves).

``work(ticket)`` calls :meth:`Ticket.check` before every network evaluation (a step hook of
:func:`lumina_core.sampling.integrate`); it raises :class:`Cancelled` when the ticket was cancelled, when
the request ran past its deadline, or when nobody has polled it for ``abandon_s`` seconds (the client went
away: its page or connection closed). Between evaluations is the finest point at which a computation on
the model can stop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lumina.serve")


class Cancelled(Exception):
    """A request stopped before it finished; the message says why (in words for the person who asked)."""


class Busy(ValueError):
    """Too many requests are waiting; the message says how many."""


class Ticket:
    """One request: its state, its progress (evaluations done of those estimated) and, when done, its result."""

    def __init__(
        self,
        owner: str | None,
        estimate_s: float,
        evals: int,
        deadline_s: float,
        abandon_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = owner
        self.estimate_s = float(estimate_s)
        self.evals = int(evals)
        self.deadline_s = float(deadline_s)
        self.abandon_s = float(abandon_s)
        self._clock = clock
        self.created = self.last_poll = clock()
        self.started: float | None = None
        self.evals_done = 0
        self.cancel_reason: str | None = None
        self.result: Any = None
        self._done = threading.Event()

    # -- the client's side -------------------------------------------------------------------------------
    def poll(self) -> None:
        """The client is still there (the page calls this while it waits)."""
        self.last_poll = self._clock()

    def cancel(self, reason: str = "cancelled") -> None:
        if self.cancel_reason is None and not self.done:
            self.cancel_reason = reason

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- the worker's side -------------------------------------------------------------------------------
    def check(self, step: int | None = None, t: float | None = None) -> None:
        """Raise :class:`Cancelled` if this request should stop now; else count one evaluation. Signature of a
        step hook (``hook(step, t)``), returning nothing."""
        now = self._clock()
        if self.cancel_reason is None and now - self.last_poll > self.abandon_s:
            self.cancel_reason = f"the client went away (no word from it for {self.abandon_s:g} s)"
        if self.cancel_reason is None and self.started is not None and now - self.started > self.deadline_s:
            self.cancel_reason = f"it ran past {self.deadline_s:g} s, twice the page's limit per request (estimated {self.estimate_s:.1f} s)"
        if self.cancel_reason is not None:
            raise Cancelled(
                f"stopped after {self.evals_done} of about {self.evals} evaluations: {self.cancel_reason}"
            )
        self.evals_done += 1

    def finish(self, result: Any) -> None:
        self.result = result
        self._done.set()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self._clock() - self.started


class JobQueue:
    """A worker thread and the requests waiting for it (at most ``max_waiting``)."""

    def __init__(self, max_waiting: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_waiting = int(max_waiting)
        self._clock = clock
        self._heap: list[tuple[float, int, Ticket, Callable[[Ticket], Any]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._running: Ticket | None = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self.finished = 0

    def submit(
        self,
        work: Callable[[Ticket], Any],
        estimate_s: float,
        evals: int,
        owner: str | None = None,
        deadline_s: float = 120.0,
        abandon_s: float = 10.0,
    ) -> Ticket:
        """Queue ``work(ticket)``; raise :class:`Busy` when ``max_waiting`` requests already wait."""
        ticket = Ticket(owner, estimate_s, evals, deadline_s, abandon_s, self._clock)
        with self._cv:
            if self._closed:
                raise Busy("the page is shutting down")
            waiting = sum(1 for _, _, t, _ in self._heap if not t.done)
            if waiting >= self.max_waiting:
                raise Busy(
                    f"busy: {waiting} requests are already waiting (the operator allows {self.max_waiting}, "
                    "--max-waiting); try again in a moment"
                )
            heapq.heappush(self._heap, (ticket.created + ticket.estimate_s, next(self._seq), ticket, work))
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="lumina-serve-worker", daemon=True)
                self._worker.start()
            self._cv.notify()
        return ticket

    def cancel(self, owner: str | None, reason: str = "cancelled") -> int:
        """Cancel every unfinished request of ``owner``; return how many."""
        with self._cv:
            tickets = [t for _, _, t, _ in self._heap] + ([self._running] if self._running else [])
        n = 0
        for t in tickets:
            if t.owner == owner and not t.done and t.cancel_reason is None:
                t.cancel(reason)
                n += 1
        return n

    def ahead_of(self, ticket: Ticket) -> tuple[int, float]:
        """Requests that will run before ``ticket`` and their estimated seconds (the running one's remainder)."""
        with self._cv:
            key = next(((k, s) for k, s, t, _ in self._heap if t is ticket), None)
            ahead = [t for k, s, t, _ in self._heap if key is not None and (k, s) < key and not t.done]
            running = self._running
        secs = sum(t.estimate_s for t in ahead)
        if running is not None and running is not ticket:
            ahead.append(running)
            secs += max(0.0, running.estimate_s - running.elapsed())
        return len(ahead), secs

    def snapshot(self) -> dict[str, Any]:
        """What the worker is doing, for the health endpoint."""
        with self._cv:
            running = self._running
            waiting = sum(1 for _, _, t, _ in self._heap if not t.done)
        return {
            "running": None
            if running is None
            else {
                "evals_done": running.evals_done,
                "evals": running.evals,
                "seconds": round(running.elapsed(), 1),
            },
            "waiting": waiting,
            "finished": self.finished,
        }

    def close(self) -> None:
        """Cancel everything and let the worker end."""
        with self._cv:
            self._closed = True
            tickets = [t for _, _, t, _ in self._heap] + ([self._running] if self._running else [])
            self._cv.notify_all()
        for t in tickets:
            t.cancel("the page is shutting down")

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if not self._heap:
                    return
                _, _, ticket, work = heapq.heappop(self._heap)
                self._running = ticket
            try:
                ticket.check()  # cancelled, or its client gone, while it waited: it never starts
                ticket.evals_done = 0
                ticket.started = self._clock()
                ticket.finish(work(ticket))
            except Cancelled as exc:
                ticket.finish(exc)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any request
                log.exception("request failed")
                ticket.finish(exc)
            finally:
                with self._cv:
                    self._running = None
                    self.finished += 1

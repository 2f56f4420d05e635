"""Progress for long work (training steps, sampling, evaluation) that a person can watch.

On a terminal: a bar with the rate and the time left (tqdm, on standard error). Elsewhere (a log file, a
scheduler's output, CI): a plain line at most every ``every_s`` seconds and one at the end, so logs stay
readable and still show that the job moves.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``with Progress(total, "sampling", "samples") as p: ... p.update(n)``.

    Args:
        total: how much work there is (None: unknown, no time left is shown).
        desc: what is being done, shown first.
        unit: what is counted.
        initial: work already done (a resumed run).
        every_s: seconds between plain lines when not on a terminal.
        stream: where to write (default: standard error).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        every_s: float = 10.0,
        stream: Any = None,
    ) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.done = self.initial = self._shown = int(initial)
        self._t0 = self._t_last = time.monotonic()
        self._bar = None
        if _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=initial, desc=desc, unit=f" {unit}", file=self.stream, dynamic_ncols=True,
                leave=True,
            )  # fmt: skip

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._t_last >= self.every_s:
            self._t_last = now
            self._line()

    def line(self) -> str:
        """The plain progress line: done/total, rate, time left."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = (self.done - self.initial) / elapsed
        text = f"{self.desc}: {self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
        text += f" ({rate:.2f} {self.unit}/s, {format_duration(elapsed)} elapsed"
        if self.total and rate > 0:
            text += f", {format_duration((self.total - self.done) / rate)} left"
        return text + ")"

    def _line(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._shown = self.done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.done != self._shown:  # the final count, unless the last line already said it
            self._line()


def first_use(what: str, where: Any, stream: Any = None) -> Progress:
    """Progress for a one-off job a command does on its first use on a machine (training an evaluation
    network, say): a line saying so at once, so minutes of work are never silent, then the usual progress."""
    stream = stream if stream is not None else sys.stderr
    print(f"first use on this machine: {what} (once; cached in {where})", file=stream, flush=True)
    return Progress(None, what, "steps", stream=stream)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

"""Expected failures: errors whose message is the whole story.

The ``lumina`` command prints such an error as one paragraph and exits with its ``exit_code`` (2 unless a
subclass says otherwise), never with a traceback (``--debug`` or ``LUMINA_DEBUG=1`` shows it). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LuminaError(Exception):
    """An expected failure (bad input, a run that cannot go on); the message says what to do."""

    exit_code = 2


class TrainingStopped(LuminaError):
    """Training stopped early but cleanly: a checkpoint was written and ``--resume last`` continues."""

    exit_code = 3


class Preempted(TrainingStopped):
    """SIGTERM (a scheduler's pre-emption notice): a checkpoint was written; exit status 143 (128 + 15), so
    the job does not look successful and a requeue resumes with ``--resume last``."""

    exit_code = 143


class LuminaWarning(UserWarning):
    """Something the user should know that does not stop the command (a checkpoint that cannot be verified,
    a fallback taken); the ``lumina`` command prints it as one line, ``lumina: warning: <message>``."""

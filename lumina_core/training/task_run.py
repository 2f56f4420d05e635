"""A task's state in one training run: what the Lightning module keeps per task, in one object.

    run = TaskRun(task)                 # one per task, held by the module in recipe order
    run.open(preview_items=4)           # the training set (condition kind checked), held-out preview items
    loader = run.loader(seed + i, rank, world)   # resumes where the run's position says
    run.consumed(batch, loss)           # after a step that trained on ``batch``
    run.state_dict() / run.load_state_dict(saved)   # the part of it a checkpoint keeps

The position is where the task's data stream is: for a map-style dataset, ``data_position`` batches of this
rank consumed (the seeded sampler of :mod:`.data` restarts from ``data_position * batch_size * world``); for a
streamed (webdataset) dataset, where each reader is (:class:`~lumina_core.data.stream.StreamPosition`). The
losses since the last log line are kept until the module's log line takes them (not checkpointed: a log line
averages the steps since the one before).

In a checkpoint the runs' states are laid out as they always were (:func:`runs_state` /
:func:`load_runs_state`): ``data_position: {task: batches}`` and ``stream_positions: {task: readers}`` (only
tasks that streamed), so checkpoints written before this object existed resume unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lumina_core.data.stream import StreamPosition

__all__ = ["TaskRun", "load_runs_state", "runs_state"]


class TaskRun:
    """One task's run state (see the module docstring).

    Attributes:
        task: the built :class:`~lumina_core.training.task.Task`.
        dataset: its training set once :meth:`open` ran (else None).
        preview_items: the first held-out items the preview callback renders (none for a classifier).
        data_position: batches of this task this rank consumed.
        stream_position: where a streamed training set's readers are.
        losses: the task's losses of the steps since the last log line.
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        self.dataset: Any = None
        self.preview_items: list[dict[str, Any]] = []
        self.data_position = 0
        self.stream_position = StreamPosition()
        self.losses: list[float] = []
        self.first_loss_at = 0  # the draw of the first loss since the last log line (orders the log line)

    def __repr__(self) -> str:
        return f"TaskRun({self.name!r}, data_position={self.data_position})"

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def conditioner(self) -> Any:
        return self.task.conditioner

    # -- data ---------------------------------------------------------------------------------------------------
    def open(self, preview_items: int) -> None:
        """Build the training set (refused when the conditioner does not encode its condition kind) and take
        the first ``preview_items`` held-out items for previews (a classifier generates nothing: none)."""
        from lumina_core.data.stream import first_items

        self.dataset = self.task.dataset("train", check_condition_kind=True)
        self.preview_items = (
            first_items(self.task.dataset("val"), preview_items) if self.task.generative else []
        )

    def loader(self, seed: int, rank: int = 0, world: int = 1) -> Any:
        """The task's batches for rank ``rank`` of ``world``, from where the run is: a streamed set resumes from
        its readers' saved positions, a map-style one after ``data_position`` batches of the sampler seeded
        ``seed``."""
        from lumina_core.data.stream import is_stream, stream_loader
        from lumina_core.training.data import task_loader

        task, workers = self.task, int(self.task.config.data.num_workers)
        if is_stream(self.dataset):
            return stream_loader(
                self.dataset, task.batch_size, workers, state=self.stream_position.state_dict() or None
            )
        return task_loader(self.dataset, task.batch_size, workers, seed, self.data_position, rank, world)

    def size(self) -> int | None:
        """The training set's length, or None (not opened, or a stream without one)."""
        try:
            return len(self.dataset) if self.dataset is not None else None
        except TypeError:
            return None

    def skip_report(self) -> dict[str, Any] | None:
        """``{"seen", "skipped", "names"}`` when the training set skips unreadable samples, else None."""
        from lumina_core.data.robust import skip_report

        return skip_report(self.dataset) if self.dataset is not None else None

    # -- steps --------------------------------------------------------------------------------------------------
    def consumed(self, batch: Mapping[str, Any]) -> None:
        """A step drew ``batch`` of this task (counted whether or not the step is then skipped)."""
        self.data_position += 1
        self.stream_position.update(batch)

    def record_loss(self, value: float, draw: int) -> None:
        """The loss of a step that was taken (``draw``: the step stream's draw number, for the log line's order)."""
        if not self.losses:
            self.first_loss_at = draw
        self.losses.append(float(value))

    def take_losses(self) -> tuple[float, int] | None:
        """``(mean, count)`` of the losses since the last log line, which starts a new tally; None without any."""
        if not self.losses:
            return None
        mean, count = sum(self.losses) / len(self.losses), len(self.losses)
        self.losses = []
        return mean, count

    # -- checkpoint ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the run: ``{"data_position": int, "stream_position": readers or {}}``."""
        return {"data_position": self.data_position, "stream_position": self.stream_position.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved :meth:`state_dict` (missing parts: from the beginning)."""
        self.data_position = int(state.get("data_position", 0))
        self.stream_position.load_state_dict(state.get("stream_position") or None)


def runs_state(runs: Mapping[str, TaskRun]) -> dict[str, Any]:
    """The runs' states in the checkpoint's layout: ``{"data_position": {task: n}, "stream_positions":
    {task: readers}}``, the streams' readers gathered from every rank (a collective in a distributed run: every
    rank calls it; a task that has streamed nothing is left out)."""
    from lumina_core.data.stream import gather_state

    return {
        "data_position": {n: r.data_position for n, r in runs.items()},
        "stream_positions": {
            n: gather_state(r.stream_position) for n, r in runs.items() if r.stream_position.state_dict()
        },
    }


def load_runs_state(runs: Mapping[str, TaskRun], state: Mapping[str, Any]) -> None:
    """Restore every run from a checkpoint's training state (:func:`runs_state`'s layout; a task the
    checkpoint does not know starts from the beginning, a task it knows that the recipe lacks is ignored)."""
    positions = state.get("data_position") or {}
    streams = state.get("stream_positions") or {}
    for name, run in runs.items():
        run.load_state_dict({"data_position": positions.get(name, 0), "stream_position": streams.get(name)})

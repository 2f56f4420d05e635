"""TaskRun: one task's state in a training run (datasets, data and stream positions, loss tallies), saved and
restored as one unit under the checkpoint keys checkpoints have always had."""

from __future__ import annotations

import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.data.stream import StreamPosition
from lumina_core.training.build import build_run
from lumina_core.training.module import LuminaLightningModule
from lumina_core.training.task_run import TaskRun, load_runs_state, runs_state

#: a streamed task's readers as ``StreamPosition.state_dict`` writes them
STREAMED = {
    "world": 1,
    "workers": 2,
    "positions": {"0": [0, 5, 9], "1": [0, 4, 9]},
    "next_worker": 1,
    "batches": 3,
}


def _runs(tmp_path, *names: str) -> dict[str, TaskRun]:
    parts = build_run(tiny_recipe(tmp_path, [seq_task(n) for n in names]))
    return {n: TaskRun(t) for n, t in parts.tasks.items()}


def _batches(loader, n: int) -> list[list[torch.Tensor]]:
    it = iter(loader)
    return [next(it)["samples"] for _ in range(n)]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_open_builds_the_training_set_and_the_preview_items(tmp_path):
    run = _runs(tmp_path, "a")["a"]
    assert run.dataset is None and run.size() is None and run.skip_report() is None
    run.open(preview_items=3)
    assert run.size() == 24 and run.dataset.split == "train"
    assert len(run.preview_items) == 3 and run.preview_items[0]["meta"] == run.task.dataset("val")[0]["meta"]


def test_the_loader_continues_from_the_runs_position(tmp_path):
    run = _runs(tmp_path, "a")["a"]
    run.open(preview_items=0)
    whole = _batches(run.loader(seed=7), 5)
    for b in whole[:3]:
        run.consumed({"meta": [{}] * len(b)})
    assert run.data_position == 3
    rest = _batches(run.loader(seed=7), 2)  # a resumed run reads on where the stopped one was
    assert all(_same(x, y) for x, y in zip(rest, whole[3:], strict=True))
    assert not _same(whole[0], whole[3])


def test_state_round_trip_is_one_unit(tmp_path):
    runs = _runs(tmp_path, "a", "b")
    runs["a"].data_position = 5
    runs["b"].data_position = 2
    runs["b"].stream_position.load_state_dict(STREAMED)
    saved = runs_state(runs)
    # the checkpoint layout of before: positions of every task, readers of the tasks that streamed
    assert saved == {"data_position": {"a": 5, "b": 2}, "stream_positions": {"b": STREAMED}}
    again = _runs(tmp_path, "a", "b")
    load_runs_state(again, saved)
    assert {n: r.state_dict() for n, r in again.items()} == {n: r.state_dict() for n, r in runs.items()}
    assert again["a"].stream_position.state_dict() == {}


def test_a_training_state_written_by_the_old_module_restores(tmp_path):
    """The keys the module wrote before TaskRun existed (``data_position``, ``draws``, ``stream_positions`` on
    the training state), written here by hand, restore into the task runs."""
    cfg = tiny_recipe(tmp_path, [seq_task("a"), seq_task("b")])
    module = LuminaLightningModule(cfg, build_run(cfg), tmp_path)
    weights = {k: v.detach().clone() for k, v in module.trainable_state().items()}
    old = {
        "step": 6,
        "data_position": {"a": 6, "gone": 9},  # "b" is new in the recipe, "gone" left it
        "draws": 6,
        "stream_positions": {"a": STREAMED},
        "nonfinite_skipped": 0,
    }
    module.restore(weights, None, old)
    assert module.step == 6 and module.draws == 6
    assert module.data_position == {"a": 6, "b": 0}
    assert module.runs["a"].stream_position.state_dict() == STREAMED
    assert module.runs["b"].stream_position.state_dict() == StreamPosition().state_dict() == {}


def test_losses_since_the_last_log_line(tmp_path):
    runs = _runs(tmp_path, "a", "b")
    assert runs["a"].take_losses() is None
    runs["b"].record_loss(1.0, draw=1)
    runs["a"].record_loss(2.0, draw=2)
    runs["b"].record_loss(3.0, draw=3)
    assert runs["b"].first_loss_at < runs["a"].first_loss_at  # the log line lists "b" first, as it ran first
    assert runs["b"].take_losses() == (2.0, 2) and runs["a"].take_losses() == (2.0, 1)
    assert runs["b"].take_losses() is None  # a new tally starts after the line

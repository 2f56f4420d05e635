"""Atomic checkpoint files: safetensors weights, weights_only-loadable state, the 'last' pointer."""

from __future__ import annotations

import pytest
import torch

from lumina_core.training import checkpoint as ckpt_io


def _save(root, step, **kw):
    w = {"model.a": torch.full((2, 3), float(step)), "model.b": torch.arange(4)}
    state = {"step": step, "rng": torch.Generator().manual_seed(step).get_state(), "pos": {"t": step}}
    return ckpt_io.save_checkpoint(root, step, w, {k: v * 2 for k, v in w.items()}, state, **kw)


def test_round_trip_and_weights_only_state(tmp_path):
    path = _save(tmp_path, 5)
    assert path.name == "step_0000005" and (tmp_path / "last").read_text().strip() == path.name
    assert ckpt_io.resolve_checkpoint(tmp_path) == path
    assert ckpt_io.resolve_checkpoint(path) == path
    w, e = ckpt_io.load_weights(path), ckpt_io.load_weights(path, "ema")
    assert torch.equal(w["model.a"], torch.full((2, 3), 5.0)) and torch.equal(
        e["model.b"], torch.arange(4) * 2
    )
    state = torch.load(path / "state.pt", weights_only=True)  # no pickled code
    assert state["step"] == 5 and state["pos"] == {"t": 5}
    assert torch.equal(state["rng"], torch.Generator().manual_seed(5).get_state())


def test_resolve_from_run_dir_and_errors(tmp_path):
    path = _save(tmp_path / "checkpoints", 2)
    assert ckpt_io.resolve_checkpoint("last", tmp_path) == path
    assert ckpt_io.resolve_checkpoint(tmp_path) == path
    assert ckpt_io.resolve_checkpoint(tmp_path / "checkpoints" / "last") == path  # the pointer file itself
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        ckpt_io.resolve_checkpoint(tmp_path / "elsewhere")


def test_keeps_newest_and_resaves_same_step(tmp_path):
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, step, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "step_0000003",
        "step_0000004",
        "step_0000005",
    ]
    _save(tmp_path, 5, keep=3)  # overwriting a step replaces it whole
    assert (tmp_path / "last").read_text().strip() == "step_0000005"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_crash_during_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    good = _save(tmp_path, 1)

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 2)
    monkeypatch.undo()
    assert ckpt_io.resolve_checkpoint(tmp_path) == good  # "last" still names the complete one
    assert not (tmp_path / "step_0000002").exists()
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # a failed write removes its part
    (tmp_path / ".tmp-step_0000002-12345").mkdir()  # what a run killed mid-write leaves: hidden...
    ckpt_io.clean_temporaries(tmp_path)
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # ...and cleaned on the next start

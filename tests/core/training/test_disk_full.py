"""A full disk while a checkpoint is written: one paragraph naming the file and the space needed and free, exit 2,
the partial checkpoint removed, no report truncated, and ``--resume last`` continuing once there is room.

The disk fills at the real write calls: safetensors' ``save_file`` (which writes the weights from native code)
writes part of its file and raises ``ENOSPC``, and so does every later write of a report
(:func:`lumina_core.safe_write.write_all`, the ``os.write`` loop under every report)."""

from __future__ import annotations

import errno
import json
import os

from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core import safe_write
from lumina_core.cli.main import main
from lumina_core.safe_write import DiskFull, write_atomic
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.module import LuminaLightningModule

EARLIER_REPORT = '{"toy": {"seen": 8, "skipped": 1, "names": ["broken.npy"]}}\n'


def no_space(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def fill_disk_at(monkeypatch, step: int) -> dict[str, bool]:
    """From the first write of checkpoint ``step`` on, every write fails with ENOSPC after writing a part."""
    import safetensors.torch

    real_save_file, real_write_all = safetensors.torch.save_file, safe_write.write_all
    full = {"on": False}

    def save_file(tensors, filename, metadata=None):
        if ckpt_io.checkpoint_name(step) in str(filename):
            full["on"] = True
        if not full["on"]:
            return real_save_file(tensors, filename, metadata)
        with open(filename, "wb") as f:
            f.write(b"\0" * 4096)  # what fitted before the disk filled up
        raise no_space(filename)

    def write_all(fd, data):
        if not full["on"]:
            return real_write_all(fd, data)
        os.write(fd, data[:100])
        raise no_space(fd)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(safe_write, "write_all", write_all)
    return full


def test_a_checkpoint_that_does_not_fit_is_one_paragraph_and_resume_last_continues(
    tmp_path, monkeypatch, capsys
):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality for the command)

    out = tmp_path / "run"
    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(tiny_recipe(out, max_steps=4, ckpt_every=2), recipe)
    out.mkdir()
    (out / "data_report.json").write_text(EARLIER_REPORT)  # a report the run will try to rewrite
    with monkeypatch.context() as m:
        m.setattr(
            LuminaLightningModule, "skipped_samples", lambda self: {"toy": {"seen": 9, "skipped": 0, "names": []}}
        )
        full = fill_disk_at(m, step=4)
        code = main(["train", str(recipe)])
        assert full["on"]
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = err.split("lumina train: error: ", 1)[1]
    assert f"could not write {out / 'checkpoints' / 'step_0000004' / 'model.safetensors'}" in message
    assert "no space left" in message and "it needs about " in message and " is free there" in message
    assert f"{out / 'checkpoints' / 'step_0000002'}, is intact" in message and "--resume last" in message
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["last", "step_0000002"]  # the partial .tmp-step_0000004-<pid> folder is gone
    assert (out / "data_report.json").read_text() == EARLIER_REPORT  # not truncated
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]

    # space freed: the run continues from the intact checkpoint to the end
    assert main(["train", str(recipe), "--resume", "last"]) == 0
    assert "at step 2" in capsys.readouterr().out
    final = ckpt_io.resolve_checkpoint("last", out)
    assert final.name == "step_0000004" and int(ckpt_io.load_state(final)["step"]) == 4


def test_write_atomic_leaves_the_earlier_file_whole_when_the_disk_is_full(tmp_path, monkeypatch):
    report = tmp_path / "data_report.json"
    report.write_text(EARLIER_REPORT)

    def write_all(fd, data):  # the first 10 bytes fit, then the disk is full
        os.write(fd, data[:10])
        raise no_space(fd)

    monkeypatch.setattr(safe_write, "write_all", write_all)
    try:
        write_atomic(report, json.dumps({"toy": {"seen": 100}}), "the data report")
    except DiskFull as exc:
        message = str(exc)
    else:
        raise AssertionError("a full disk must raise DiskFull")
    monkeypatch.undo()
    assert f"could not write {report} (the data report)" in message and "left as it was" in message
    assert report.read_text() == EARLIER_REPORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data_report.json"]
    write_atomic(report, "{}\n")
    assert report.read_text() == "{}\n"

"""A checkpoint that cannot be verified (no meta.json, or one without checksums) is used with a one-line
warning, never silently (issue 27)."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli.main import main
from lumina_core.errors import LuminaWarning
from lumina_core.training import checkpoint as ck


def _checkpoint(tmp_path, name="ckpts"):
    return ck.save_checkpoint(tmp_path / name, 2, {"model.w": torch.ones(2)}, None, {"step": 2})


def test_no_meta_json_warns_that_it_cannot_be_verified(tmp_path):
    path = _checkpoint(tmp_path)
    (path / ck.META_FILE).unlink()
    with pytest.warns(LuminaWarning, match=rf"checkpoint {path} cannot be verified \(it has no meta.json"):
        assert ck.resolve_checkpoint(path) == path
    assert torch.equal(ck.load_weights(path)["model.w"], torch.ones(2))


def test_meta_json_without_checksums_warns_too(tmp_path):
    path = _checkpoint(tmp_path, "old")
    meta = json.loads((path / ck.META_FILE).read_text())
    del meta["files"]
    (path / ck.META_FILE).write_text(json.dumps(meta))
    with pytest.warns(LuminaWarning, match="records no file sizes or checksums"):
        ck.resolve_checkpoint(path)


def test_a_verified_checkpoint_does_not_warn(tmp_path, recwarn):
    ck.resolve_checkpoint(_checkpoint(tmp_path, "fine"))
    assert not [w for w in recwarn if issubclass(w.category, LuminaWarning)]


def test_sampling_an_unverifiable_checkpoint_says_so_in_one_line(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality)

    from lumina_core.training.api import train

    cfg = tiny_recipe(tmp_path / "run", max_steps=2)
    run = train(cfg)
    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(cfg, recipe)
    (run / "checkpoints" / "step_0000002" / ck.META_FILE).unlink()
    capsys.readouterr()

    def show(message, category, filename, lineno, file=None, line=None):  # Python's own, outside pytest
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    argv = ["sample", str(recipe), "--ckpt", "last", "--class", "1", "--num", "1", "--out", str(tmp_path / "s")]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    warned = [line for line in err.splitlines() if "cannot be verified" in line]
    assert len(warned) == 1 and warned[0].startswith("lumina: warning: checkpoint ")
    assert "UserWarning" not in err and "warnings.warn" not in err

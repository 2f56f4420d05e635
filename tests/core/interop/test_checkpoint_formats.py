"""Checkpoint formats are a registry that plugins provide: the image plugin's ``released`` and ``diffusers``,
and any other plugin's format goes through the same ``lumina convert --from NAME`` and ``load_run`` path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.cli.main import main
from lumina_core.interop.checkpoint_format import CheckpointFormat, LoadedCheckpoint
from lumina_core.registry import CHECKPOINT_FORMATS, temporary_registrations

FOREIGN = "net."  # the toy format's key prefix: a layout that is not ours


def test_the_image_plugin_provides_the_released_and_diffusers_formats():
    for name in ("released", "diffusers"):
        info = CHECKPOINT_FORMATS.describe(name)
        assert info.conforms and info.base is CheckpointFormat
        assert CHECKPOINT_FORMATS.origin(name).startswith("lumina_modalities.image.checkpoints")
        assert "learn_sigma" in CHECKPOINT_FORMATS.get(name).fit_advice


def test_an_unknown_format_is_one_paragraph_and_exit_2(tmp_path, capsys):
    src = tmp_path / "ckpt.pth"
    src.write_bytes(b"")
    assert main(["convert", str(src), str(tmp_path / "out"), "--from", "relesed"]) == 2
    err = capsys.readouterr().err
    assert "unknown checkpoint format 'relesed'" in err and "released" in err
    assert main(["convert", str(src), str(tmp_path / "out"), "--from", "released"]) == 2  # an empty file
    assert "is not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_a_plugins_own_format_converts_and_loads_into_a_recipe(tmp_path, monkeypatch):
    """A format registered outside the image plugin (the toy sequence task's): convert through the CLI, then
    ``load_run`` puts exactly the source weights into the recipe's model."""
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_core.registry import MODALITIES
    from lumina_core.training.api import load_run

    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    spec = MODALITIES.build({"name": "_test_seq"}).adapter_spec()
    config = NextDiTConfig(dim=32, n_layers=2, n_heads=2)

    class ToyFormat(CheckpointFormat):
        name = "_test_toy"
        fit_advice = "check the toy task's width"

        def load(self, src, preset=None):
            state = torch.load(str(src), weights_only=True)
            model = LuminaModel(config, {"seq": spec})
            model.load_state_dict({k[len(FOREIGN) :]: v for k, v in state.items()})
            return LoadedCheckpoint(model, "seq", {"toy": {"source_keys": len(state)}})

    source = LuminaModel(config, {"seq": spec})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in source.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    torch.save({FOREIGN + k: v for k, v in source.state_dict().items()}, tmp_path / "toy.pt")

    with temporary_registrations():
        CHECKPOINT_FORMATS.register("_test_toy")(ToyFormat)
        out = tmp_path / "converted"
        assert main(["convert", str(tmp_path / "toy.pt"), str(out), "--from", "_test_toy"]) == 0
        meta = json.loads((out / "config.json").read_text())
        assert meta["source"]["format"] == "_test_toy" and meta["toy"] == {"source_keys": len(source.state_dict())}
        cfg = tiny_recipe(tmp_path / "runs", [seq_task(conditioned=False)])
        parts = load_run(cfg, out)
        loaded = parts.model.state_dict()
        for k, v in source.state_dict().items():
            assert torch.equal(loaded[k], v), k
        wide = seq_task(conditioned=False)
        wide["learn_sigma"] = True
        with pytest.raises(ValueError, match=r"out_dim: checkpoint \d+, recipe \d+ \(check the toy task's width\)"):
            load_run(tiny_recipe(tmp_path / "runs", [wide]), out)
    assert "_test_toy" not in CHECKPOINT_FORMATS.names()
    assert Path(out / "model.safetensors").is_file()

"""Our converted format, format-agnostic: what ``convert`` writes for any registered format, ``read_converted``
reads back bit for bit (model, task, the format's own record); folders it did not write are refused clearly."""

from __future__ import annotations

import json

import pytest
import torch

from lumina_core.interop import CheckpointFormat, LoadedCheckpoint, convert, read_converted
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import CHECKPOINT_FORMATS, temporary_registrations

CONFIG = NextDiTConfig(dim=32, n_layers=2, n_heads=2)
SPEC = AdapterSpec(in_dim=6, out_dim=6, num_axes=1, axis_split=(1,))


def source_model() -> LuminaModel:
    model = LuminaModel(CONFIG, {"wave": SPEC})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


class PlainFormat(CheckpointFormat):
    name = "_test_plain"

    def load(self, src, preset=None):
        model = LuminaModel(CONFIG, {"wave": SPEC})
        model.load_state_dict(torch.load(str(src), weights_only=True))
        return LoadedCheckpoint(model, "wave", {"plain": {"note": "toy"}})


def test_read_converted_returns_what_convert_wrote(tmp_path):
    source = source_model()
    torch.save(source.state_dict(), tmp_path / "src.pt")
    with temporary_registrations():
        CHECKPOINT_FORMATS.register("_test_plain")(PlainFormat)
        out = convert(tmp_path / "src.pt", tmp_path / "conv", "_test_plain")
    loaded = read_converted(out)
    assert loaded.task == "wave" and loaded.extra == {"plain": {"note": "toy"}}
    assert loaded.model.adapters["wave"].spec == SPEC and loaded.model.config.to_dict() == CONFIG.to_dict()
    got = loaded.model.state_dict()
    for k, v in source.state_dict().items():
        assert torch.equal(got[k], v), k
    assert not loaded.model.training


def test_folders_convert_did_not_write_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected config.json and model.safetensors"):
        read_converted(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"_class_name": "LuminaNextDiT2DModel"}))
    (tmp_path / "other" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not written by `lumina convert`"):
        read_converted(tmp_path / "other")

"""LoRA export formats are a registry plugins provide (``LORA_FORMATS``): the image plugin's two, a plugin's
own format through ``lumina lora export --format NAME``, and an unknown name (did-you-mean, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lumina_core.cli.main import main
from lumina_core.finetune import (
    AdapterFile,
    LoraExportFormat,
    LoraSettings,
    adapter_parameters,
    apply_lora,
    export_adapter,
    read_adapter,
    save_adapter,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import LORA_FORMATS, temporary_registrations

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=16, out_dim=16, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
CFG = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12)


def adapter_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = LuminaModel(CFG, {"image": SPEC})
    settings = LoraSettings(rank=2, alpha=6)
    apply_lora(model, settings)
    with torch.no_grad():
        for p in adapter_parameters(model).values():
            p.copy_(torch.randn_like(p))
    return save_adapter(tmp_path / "a.safetensors", model, settings)


class DeltaFormat(LoraExportFormat):
    """A toy plugin format: the full weight update ``s B A`` per module, plus a JSON index (two files)."""

    name = "_test_delta"
    description = "dense weight deltas and an index"
    default_filename = "deltas.safetensors"

    def export(self, adapter: AdapterFile, out):
        path = self.output_file(out)
        s = adapter.settings.scale
        deltas = {m: s * (adapter.factors(m)[1] @ adapter.factors(m)[0]) for m in adapter.modules}
        self.write(deltas, path)
        index = path.with_suffix(".json")
        index.write_text(json.dumps({"modules": adapter.modules, "scale": s}))
        return [path, index]


def test_the_image_plugin_provides_diffusers_comfyui_and_kohya():
    for name in ("diffusers", "comfyui", "kohya"):
        assert LORA_FORMATS.origin(name).startswith("lumina_modalities.image.interop.lora_export")
        assert LORA_FORMATS.conforms(name) and LORA_FORMATS.get(name).description


def test_a_plugins_own_format_exports_through_the_cli(tmp_path, capsys):
    a = adapter_file(tmp_path)
    with temporary_registrations():
        LORA_FORMATS.register("_test_delta")(DeltaFormat)
        assert main(["lora", "export", str(a), "--format", "_test_delta", "--out", str(tmp_path / "out")]) == 0
        printed = capsys.readouterr().out
        paths = export_adapter(a, tmp_path / "again.safetensors", "_test_delta")
    assert "_test_delta" not in LORA_FORMATS.names()
    deltas = load_file(str(tmp_path / "out" / "deltas.safetensors"))
    assert f"wrote {tmp_path / 'out' / 'deltas.safetensors'}" in printed and "deltas.json" in printed
    adapter = read_adapter(a)
    assert sorted(deltas) == adapter.modules == json.loads((tmp_path / "out" / "deltas.json").read_text())["modules"]
    module = "trunk.layers.1.attention.wqkv"
    want = 3.0 * adapter.state[f"{module}.lora_B.weight"] @ adapter.state[f"{module}.lora_A.weight"]
    torch.testing.assert_close(deltas[module], want)
    assert [p.name for p in paths] == ["again.safetensors", "again.json"]


def test_an_unknown_format_exits_2_with_a_suggestion_before_reading_the_adapter(tmp_path, capsys):
    code = main(["lora", "export", str(tmp_path / "missing.safetensors"), "--format", "difusers",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown LoRA export format 'difusers'" in err and "Did you mean: 'diffusers'" in err
    assert "comfyui" in err and not (tmp_path / "o").exists()


def test_the_example_format_of_docs_plugins_md_exports_the_update(tmp_path):
    """The LoRA export example printed in docs/plugins.md, run as printed: its file gives ``W' = W + s B A``."""
    import re

    doc = (Path(__file__).resolve().parents[3] / "docs" / "plugins.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "@LORA_FORMATS.register" in b]
    a = adapter_file(tmp_path)
    with temporary_registrations():
        exec(compile(block, "docs/plugins.md", "exec"), {"__name__": "waves_lora_doc"})
        (path,) = export_adapter(a, tmp_path / "out", "waves_tool")
    assert path.name == "waves_lora.safetensors" and "waves_tool" not in LORA_FORMATS.names()
    state, adapter = load_file(str(path)), read_adapter(a)
    module = "trunk.layers.0.feed_forward.w13"
    want = 3.0 * adapter.state[f"{module}.lora_B.weight"] @ adapter.state[f"{module}.lora_A.weight"]
    torch.testing.assert_close(state["net.layers.0.feed_forward.w13.up"] @ state["net.layers.0.feed_forward.w13.down"], want)

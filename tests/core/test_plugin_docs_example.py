"""The example plugin of docs/plugins.md, exactly as printed there, follows the contract: it passes the
conformance suite (datasets built as the trainer builds them, its checker against junk), its recipe
validates, and it trains."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def waves_package(tmp_path, monkeypatch):
    pkg = tmp_path / "lumina_waves"
    pkg.mkdir()
    for block in _blocks("python"):
        first = block.splitlines()[0]
        m = re.match(r"# (lumina_waves/\w+\.py)", first)
        if m:
            (tmp_path / m.group(1)).write_text(block)
        elif "class TestWavesConformance" in block:
            (tmp_path / "waves_conformance.py").write_text(block)
    assert {p.name for p in pkg.iterdir()} == {"__init__.py", "plugin.py", "datasets.py"}
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("lumina_waves") or m == "waves_conformance"]:
        del sys.modules[name]


def test_the_documented_plugin_passes_the_conformance_suite_validates_and_trains(waves_package, tmp_path):
    import importlib

    suite_module = importlib.import_module("waves_conformance")
    suite = suite_module.TestWavesConformance()
    suite.test_datasets_yield_items()
    suite.test_dataset_checker_tells_real_from_junk()
    suite.test_round_trip()

    from omegaconf import OmegaConf

    from lumina_core.config.validate import validate_recipe
    from lumina_core.training.api import train

    (recipe_text,) = [b for b in _blocks("yaml") if "waves_procedural" in b]
    recipe = yaml.safe_load(recipe_text)
    recipe["run"] = {"output_dir": str(tmp_path / "run"), "device": "cpu"}
    recipe["train"].update({"max_steps": 2, "ckpt_every": 2, "log_every": 1})
    recipe["tasks"][0]["data"]["batch_size"] = 4
    assert validate_recipe(recipe) == []
    run_dir = train(OmegaConf.create(recipe))
    assert (run_dir / "checkpoints" / "step_0000002").is_dir()

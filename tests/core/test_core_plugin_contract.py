"""The modality contract's bookkeeping is real: ``params`` rebuilds the plugin, ``default_recipe`` names a
recipe of that modality, the condition kinds are the ones conditioners give; music is a configured audio
representation, not a facade; the model package has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import lumina_core
from lumina_core.plugin import CONDITION_KINDS, ModalityPlugin
from lumina_core.registry import CONDITIONERS, MODALITIES, load_all_plugins


@pytest.fixture(scope="module")
def modalities() -> list[str]:
    load_all_plugins()
    return [n for n in MODALITIES.names() if not n.startswith("_")]


def test_params_rebuild_an_equal_plugin(modalities, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path))
    for name in modalities:
        plugin = MODALITIES.build(name)
        again = MODALITIES.build(plugin.component())
        assert type(again) is type(plugin) and again.params == plugin.params, name
        assert (
            again.adapter_spec() == plugin.adapter_spec() and again.default_shape() == plugin.default_shape()
        )
        assert repr(plugin).startswith(type(plugin).__name__ + "(")


def test_default_recipe_names_a_recipe_of_that_modality(modalities):
    for name in modalities:
        path = MODALITIES.get(name).default_recipe_path()
        assert path is not None and path.is_file(), name
        recipe = OmegaConf.load(path)
        assert name in [t.modality.name for t in recipe.tasks], f"{path} trains no {name!r} task"
        assert path.read_text().startswith("# Run: lumina "), f"{path} does not start with its command"


def test_a_default_recipe_that_is_not_there_is_explained():
    class Lost(ModalityPlugin):
        name = "lost"
        default_recipe = "recipes/lost/nowhere.yaml"

    with pytest.raises(FileNotFoundError, match="'lost' names default_recipe 'recipes/lost/nowhere.yaml'"):
        Lost.default_recipe_path()
    assert ModalityPlugin.default_recipe_path() is None


def test_condition_kinds_are_the_ones_conditioners_give(modalities):
    assert "camera" not in CONDITION_KINDS  # per-token conditions (cameras) travel as TokenBatch.token_cond
    given = {CONDITIONERS.get(n).kind for n in CONDITIONERS.names() if not n.startswith("_")}
    assert given == CONDITION_KINDS
    for name in modalities:
        assert MODALITIES.get(name).conditions <= CONDITION_KINDS, name


def test_music_is_the_audio_representation_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path))
    load_all_plugins()
    audio, music = MODALITIES.get("audio"), MODALITIES.get("music")
    assert issubclass(music, audio)
    own = {k for k in vars(music) if not k.startswith("_")} | ({"__init__"} & set(vars(music)))
    assert own <= {"name", "default_recipe", "mel", "__init__"}, f"music re-implements {sorted(own)}"
    m, a = music(), audio()
    assert (m.sample_rate, m.clip_seconds, m.mean, (m.pt, m.pf)) == (16000, 4.0, -7.0, (8, 16))
    assert (a.sample_rate, a.clip_seconds, a.mean, (a.pt, a.pf)) == (22050, 1.0, -5.0, (4, 8))
    tuned = music(clip_seconds=2.0, compress=0.15, mean=0.4, std=0.218)
    assert tuned.default_shape() == (1, 32000) and tuned.compress == 0.15 and tuned.mel is tuned


def _imports(path: Path, package: str) -> set[str]:
    """Every module of ``package`` that ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package)}
    return found


def test_the_model_package_has_no_import_cycle():
    root = Path(lumina_core.__file__).parent / "model"
    graph = {
        f"lumina_core.model.{p.stem}": _imports(p, "lumina_core.model.")
        for p in root.glob("*.py")
        if p.stem != "__init__"
    }
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path, node]))
        if seen.get(node) == 2 or node not in graph:
            return
        seen[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        seen[node] = 2

    for module in sorted(graph):
        visit(module, [])
    assert "lumina_core.model.lumina_model" not in graph["lumina_core.model.config"]
    assert "lumina_core.model.nextdit" not in graph["lumina_core.model.adapter"]

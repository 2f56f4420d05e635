"""`lumina plugins new`: the generated package is installable, found by its entry point, and passes the
conformance suite as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lumina_core import CORE_API_VERSION
from lumina_core.scaffold import LAYOUT, create_plugin, plugin_identifiers

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[3]


def _env(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*paths, ROOT))
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_layout_and_pyproject(tmp_path):
    root = create_plugin("sea_waves", tmp_path)
    ids = plugin_identifiers("sea_waves")
    assert ids == {
        "name": "sea_waves",
        "pkg": "lumina_sea_waves",
        "dist": "lumina-sea-waves",
        "cls": "SeaWaves",
        "api": CORE_API_VERSION,
    }
    for target in LAYOUT.values():
        assert (root / target.format(**ids)).is_file(), target
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "lumina-sea-waves"
    assert meta["project"]["entry-points"]["lumina.plugins"] == {"sea_waves": "lumina_sea_waves"}
    recipe = (root / "recipes" / "sea_waves" / "tiny.yaml").read_text()
    assert recipe.startswith("# Run: lumina train recipes/sea_waves/tiny.yaml")
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")  # valid Python after substitution


@pytest.mark.parametrize("condition", ["class", "text"])
def test_generated_code_passes_ruff_with_the_project_settings(tmp_path, condition):
    pytest.importorskip("ruff")
    root = create_plugin("sea_waves", tmp_path, condition=condition)
    generated = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["ruff"]
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    isort = generated["lint"].pop("isort")
    assert generated == ours, "the scaffold's lint settings drifted from the project's pyproject.toml"
    assert isort == {"known-first-party": ["lumina_sea_waves"], "known-third-party": ["lumina_core"]}
    for command in (["check"], ["format", "--check", "--diff"]):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=60,
        )
        assert out.returncode == 0, f"ruff {' '.join(command)}:\n{out.stdout}{out.stderr}"


@pytest.mark.parametrize("bad", ["Waves", "2waves", "wa-ves", "class", ""])
def test_bad_names_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="lowercase identifier"):
        create_plugin(bad, tmp_path)
    with pytest.raises(ValueError, match="condition must be one of 'class', 'text'; got 'audio'"):
        create_plugin("waves", tmp_path, condition="audio")


def test_text_plugin_layout_names_its_captioned_dataset(tmp_path):
    root = create_plugin("sea_waves", tmp_path, condition="text")
    assert 'conditions = frozenset({"text", "none"})' in (root / "lumina_sea_waves" / "plugin.py").read_text()
    recipe = (root / "recipes" / "sea_waves" / "tiny.yaml").read_text()
    assert "name: sea_waves_captioned" in recipe and "name: minilm" in recipe
    assert "`sea_waves_captioned`" in (root / "README.md").read_text()


@pytest.mark.parametrize("condition", ["class", "text"])
def test_generated_conformance_tests_pass_in_process(tmp_path, monkeypatch, condition):
    """Quick loop: import the generated test module and run each of its tests (the slow test below runs
    the same file under pytest in a fresh process, found through a real entry point); a text-conditioned
    plugin's checker is tested there against ground truth, shuffled captions and noise."""
    import importlib.util
    import inspect

    name = f"quick{condition}"  # one package per variant: each registers its own names
    root = create_plugin(name, tmp_path, condition=condition)
    monkeypatch.syspath_prepend(str(root))
    spec = importlib.util.spec_from_file_location(
        f"generated_{name}_test", root / "tests" / f"test_{name}_conformance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    suite = getattr(module, f"Test{name.capitalize()}Conformance")()
    ran = []
    for attr in dir(suite):
        if attr.startswith("test_"):
            method = getattr(suite, attr)
            kwargs = (
                {"tmp_path": tmp_path / attr} if "tmp_path" in inspect.signature(method).parameters else {}
            )
            method(**kwargs)
            ran.append(attr)
    module_tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
    for test in module_tests:
        test()
    assert len(module_tests) == (3 if condition == "class" else 4)
    assert {
        "test_round_trip",
        "test_padding_invariance",
        "test_training_lowers_loss",
        "test_generate_and_preview",
        "test_datasets_yield_items",
    } <= set(ran)


@pytest.mark.slow
def test_generated_plugin_installs_passes_conformance_and_trains_through_the_command_line(tmp_path):
    """The whole first contact: generate, pip-install (a real install, into its own folder), run its own
    tests, find it by entry point only, validate its recipe, train it untouched with `lumina train`, then
    sample and evaluate the checkpoint."""
    name = "ripples"
    root = create_plugin(name, tmp_path / "src")
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-qq", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(site), str(root)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(site.glob("lumina_ripples-*.dist-info/entry_points.txt"))

    # 1. its own tests, as generated: the conformance suite, the recipe, the checker
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        cwd=root,
        env=_env(site),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout and "skipped" not in out.stdout

    # 2. found through its entry point only (nothing imports it explicitly): origin and recipe validation
    code = (
        "from lumina_core.registry import MODALITIES, plugin_entries\n"
        f"assert plugin_entries()['{name}'].status == 'not loaded'\n"
        f"print('ORIGIN', MODALITIES.origin('{name}'))\n"
        "from lumina_core.cli.main import main\n"
        f"raise SystemExit(main(['config', 'validate', 'recipes/{name}/tiny.yaml']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=_env(site), timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ORIGIN lumina_ripples.plugin.RipplesPlugin (distribution lumina-ripples 0.1.0)" in out.stdout
    assert "ok:" in out.stdout

    # 3. trained untouched through the real command line, then sampled and evaluated
    lumina = [sys.executable, "-m", "lumina_core.cli"]
    run_dir = tmp_path / "run"
    small = ["train.max_steps=4", "train.log_every=2", "train.ckpt_every=2", f"run.output_dir={run_dir}",
             "tasks.0.data.batch_size=8", "tasks.0.sampling.steps=2", "tasks.0.eval.num_samples=8"]
    for cmd in (
        ["train", f"recipes/{name}/tiny.yaml", *small],
        ["train", f"recipes/{name}/tiny.yaml", *small, "train.max_steps=6", "--resume", "last"],
        ["sample", f"recipes/{name}/tiny.yaml", *small, "--ckpt", "last", "--class", "0", "2", "--num", "1",
         "--out", str(tmp_path / "samples")],
        ["eval", f"recipes/{name}/tiny.yaml", *small],
    ):
        out = subprocess.run(
            lumina + cmd, capture_output=True, text=True, cwd=root, env=_env(site), timeout=300
        )
        assert out.returncode == 0, f"{cmd[0]}: " + out.stdout[-3000:] + out.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last").read_text().strip() == "step_0000006"  # resumed from 4 to 6
    assert len(list((tmp_path / "samples").glob("*.png"))) == 2
    assert "cycle_accuracy" in (run_dir / "metrics.json").read_text()

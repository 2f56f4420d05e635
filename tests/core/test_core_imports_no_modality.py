"""The core never imports a modality: importing every ``lumina_core`` module loads no plugin package, and no
``import`` statement in the core's source (module level or inside a function) names one."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lumina_core

CORE = Path(lumina_core.__file__).parent
#: the packages that hold modalities (shipped and the external video plugin)
PLUGIN_PACKAGES = ("lumina_modalities", "lumina_video")

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
import lumina_core
failed, names = {}, []
for info in pkgutil.walk_packages(lumina_core.__path__, "lumina_core."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except ImportError as exc:  # an optional third-party dependency that is not installed
        failed[info.name] = repr(exc)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("lumina_modalities", "lumina_video"))
print(json.dumps({"names": names, "failed": failed, "loaded": loaded}))
"""


def test_importing_every_core_module_loads_no_modality(tmp_path):
    env = {"LUMINA_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["names"]) > 50  # the walk really found the core's modules
    assert "lumina_core.interop.formats" in report["names"] and "lumina_core.finetune.export" in report["names"]
    plugin_failures = {k: v for k, v in report["failed"].items() if any(p in v for p in PLUGIN_PACKAGES)}
    assert not plugin_failures, plugin_failures
    assert report["loaded"] == [], f"importing lumina_core loaded plugin modules: {report['loaded']}"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def test_no_core_source_imports_a_modality():
    bad = [
        f"{path.relative_to(CORE.parent)}:{line} imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        for line, module in _imported_modules(path)
        if module.split(".")[0] in PLUGIN_PACKAGES
    ]
    assert not bad, "the core imports a modality: " + "; ".join(bad)


def test_the_source_check_sees_a_modality_import(tmp_path):
    """The checker is not blind: a function-level import of a plugin and an import_module call are found."""
    src = tmp_path / "probe.py"
    src.write_text(
        "import importlib\n\ndef f():\n    from lumina_modalities.image import interop\n"
        "    return importlib.import_module('lumina_video.plugin')\n"
    )
    found = [m for _, m in _imported_modules(src)]
    assert "lumina_modalities.image" in found and "lumina_video.plugin" in found

"""The suite's own layout: tests share helpers only through the ``fixtures`` package (tests/fixtures), never
by importing another test module or a helper file that sits beside the tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = [ROOT / "tests", *sorted((ROOT / "plugins").glob("*/tests"))]


def _suite_files() -> list[Path]:
    return [p for suite in SUITES for p in suite.rglob("*.py") if "fixtures" not in p.relative_to(suite).parts]


def _imported_top_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_imports_another_test_module():
    files = _suite_files()
    # any module a test could reach by path tricks: every .py of the suites outside fixtures/, by stem
    suite_modules = {p.stem for p in files} - {"conftest", "__init__"}
    offenders = []
    for path in files:
        for name in sorted(_imported_top_names(path) & suite_modules):
            offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, (
        "tests import other test modules (move the shared helper into tests/fixtures/ and import it from "
        "`fixtures`):\n  " + "\n  ".join(offenders)
    )


def test_the_check_sees_an_offending_import(tmp_path):
    """The scan above is not vacuous: it finds both import forms."""
    bad = tmp_path / "test_x.py"
    bad.write_text("from test_interop import random_diffusers\nimport toy_plugin\n")
    assert {"test_interop", "toy_plugin"} <= _imported_top_names(bad)

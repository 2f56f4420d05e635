"""``lumina plugins new NAME``: scaffold an installable plugin package that passes the conformance suite.

The package is laid out as::

    lumina-NAME/
      pyproject.toml                 entry point NAME = "lumina_NAME" in group "lumina.plugins"
      README.md
      lumina_NAME/__init__.py        imports the two modules below (importing registers everything)
      lumina_NAME/plugin.py          a ModalityPlugin subclass (1-D signals as patch tokens, PNG previews)
      lumina_NAME/datasets.py        a procedural class-conditioned dataset with a ground-truth checker
      recipes/NAME/tiny.yaml         a tiny recipe, headed by the command that runs it
      tests/test_NAME_conformance.py runs lumina_core.testing.PluginConformance on the plugin (a file name
                                     unique across projects, so pytest can collect it beside others)
      .gitignore                     run folders, samples, build output

Templates live in ``templates/`` as ``*.txt`` (``string.Template``: ``$name``, ``$pkg``, ``$dist``, ``$cls``, ``$api``).
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: template file -> path in the package (``{name}``/``{pkg}`` are filled in)
LAYOUT = {
    "pyproject.toml.txt": "pyproject.toml",
    "README.md.txt": "README.md",
    "__init__.py.txt": "{pkg}/__init__.py",
    "plugin.py.txt": "{pkg}/plugin.py",
    "datasets.py.txt": "{pkg}/datasets.py",
    "recipe.yaml.txt": "recipes/{name}/tiny.yaml",
    "test_conformance.py.txt": "tests/test_{name}_conformance.py",
    "gitignore.txt": ".gitignore",
}


def plugin_identifiers(name: str) -> dict[str, str]:
    """The names a plugin called ``name`` gets: package, distribution and class prefix."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"plugin name {name!r} must be a lowercase identifier (letters, digits, underscores, starting "
            "with a letter), e.g. 'tones' or 'seismic_traces'"
        )
    from lumina_core import CORE_API_VERSION

    return {
        "api": CORE_API_VERSION,
        "name": name,
        "pkg": f"lumina_{name}",
        "dist": f"lumina-{name.replace('_', '-')}",
        "cls": "".join(part.capitalize() for part in name.split("_") if part),
    }


def create_plugin(name: str, parent: str | Path = ".", force: bool = False) -> Path:
    """Write the plugin package ``<parent>/lumina-<name>/`` and return its root.

    Raises:
        ValueError: a bad name.
        FileExistsError: the folder exists and is not empty (unless ``force``).
    """
    ids = plugin_identifiers(name)
    root = Path(parent) / ids["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} already exists and is not empty; choose another --dir or pass --force")
    for template, target in LAYOUT.items():
        text = Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(ids)
        path = root / target.format(**ids)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


__all__ = ["create_plugin", "plugin_identifiers", "LAYOUT", "TEMPLATES"]

"""``lumina plugins new NAME``: scaffold an installable plugin package that passes the conformance suite.

The package is laid out as::

    lumina-NAME/
      pyproject.toml                 entry point NAME = "lumina_NAME" in group "lumina.plugins"
      README.md
      lumina_NAME/__init__.py        imports the two modules below (importing registers everything)
      lumina_NAME/plugin.py          a ModalityPlugin subclass (1-D signals as patch tokens, PNG previews)
      lumina_NAME/datasets.py        a procedural dataset with a ground-truth checker: class-conditioned
                                     (``--condition class``, the default) or captioned (``text``, with
                                     the shuffled-caption chance level and per-sample verdicts)
      recipes/NAME/tiny.yaml         a tiny recipe, headed by the command that runs it
      tests/test_NAME_conformance.py runs lumina_core.testing.PluginConformance on the plugin (a file name
                                     unique across projects, so pytest can collect it beside others)
      .gitignore                     run folders, samples, build output

Templates live in ``templates/`` as ``*.txt`` (``string.Template``: ``$name``, ``$pkg``, ``$dist``, ``$cls``, ``$api``,
and the condition's ``$conditions``, ``$condition_words``, ``$dataset``); a text-conditioned plugin takes the
``*_text`` variants of the dataset, recipe and test templates.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: what a plugin's items are conditioned on: template variables, and the templates replaced for that condition
CONDITIONS = {
    "class": {
        "vars": {
            "conditions": '"class", "none"',
            "condition_words": "class-conditioned",
            "dataset": "{name}_procedural",
        },
        "templates": {},
    },
    "text": {
        "vars": {
            "conditions": '"text", "none"',
            "condition_words": "captioned (text-conditioned)",
            "dataset": "{name}_captioned",
        },
        "templates": {
            "datasets.py.txt": "datasets_text.py.txt",
            "recipe.yaml.txt": "recipe_text.yaml.txt",
            "test_conformance.py.txt": "test_conformance_text.py.txt",
        },
    },
}

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


def create_plugin(name: str, parent: str | Path = ".", force: bool = False, condition: str = "class") -> Path:
    """Write the plugin package ``<parent>/lumina-<name>/`` and return its root; ``condition`` is what its
    dataset's items carry: ``"class"`` labels or ``"text"`` captions.

    Raises:
        ValueError: a bad name or condition.
        FileExistsError: the folder exists and is not empty (unless ``force``).
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(map(repr, CONDITIONS))}; got {condition!r}")
    ids = plugin_identifiers(name)
    chosen = CONDITIONS[condition]
    fill = {**ids, **{k: v.format(**ids) for k, v in chosen["vars"].items()}}
    root = Path(parent) / ids["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} already exists and is not empty; choose another --dir or pass --force")
    for template, target in LAYOUT.items():
        source = TEMPLATES / chosen["templates"].get(template, template)
        text = Template(source.read_text(encoding="utf-8")).substitute(fill)
        path = root / target.format(**ids)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


__all__ = ["create_plugin", "plugin_identifiers", "CONDITIONS", "LAYOUT", "TEMPLATES"]

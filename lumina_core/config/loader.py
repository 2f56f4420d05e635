"""Load a recipe: OmegaConf YAML merged over the structured schema, ``key=value`` overrides, validation.

    cfg = load_recipe("recipes/image/shapes_tiny.yaml", overrides=["train.max_steps=10", "tasks.0.data.batch_size=4"])

Overrides use dotted keys with list indices as plain numbers (``tasks.0.data.batch_size``); values are
parsed as YAML (``1e-4`` is a float, ``[1, 2]`` a list, ``null`` None). ``~key`` deletes a key. Every problem
(bad override, unknown key, wrong type, missing ``???`` value, unknown registered name, unknown constructor
parameter) is collected and reported in one :class:`RecipeError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumina_core.config.schema import RecipeConfig

_KEY = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)*$")
#: the header every shipped recipe starts with: ``# Run: lumina train recipes/<modality>/<name>.yaml``
_HEADER = re.compile(r"^#\s*Run:\s*(lumina\s+\S+.*)$", re.IGNORECASE)


class RecipeError(ValueError):
    """A recipe with problems; ``problems`` lists all of them (``"path: message"``)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{source}: {n} problem{'s' if n != 1 else ''}:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def _parse_value(text: str) -> Any:
    """The override's value as YAML; raises ValueError for text that is not valid YAML."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]))["v"]  # type: ignore[index]
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]  # yaml's, without positions
        raise ValueError(": ".join(p for p in parts if p) or str(exc).splitlines()[0]) from exc


def apply_overrides(cfg: Any, overrides: Sequence[str] | None) -> list[str]:
    """Apply ``key=value`` / ``~key`` overrides to an OmegaConf node in place; return the problems.

    A mapping value merges into the mapping already there (``train={lr: 1e-4}`` keeps the other train keys),
    except where it names another component (``encoder={name: class, ...}`` over ``{name: minilm, ...}``):
    a different component does not inherit the old one's ``params``, so the node is replaced."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    problems: list[str] = []
    for raw in overrides or ():
        text = raw.strip()
        if text.startswith("~"):
            key = text[1:]
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if isinstance(parent, DictConfig) and leaf in parent:
                del parent[leaf]
            elif isinstance(parent, ListConfig) and leaf.isdigit() and int(leaf) < len(parent):
                del parent[int(leaf)]
            else:
                problems.append(f"override {raw!r}: there is no key {key!r} to delete")
            continue
        if text.startswith("+"):
            text = text[1:]
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            problems.append(
                f"override {raw!r}: expected key=value with a dotted key, e.g. train.max_steps=10"
            )
            continue
        try:
            parsed = _parse_value(value)
        except ValueError as exc:
            problems.append(f"override {raw!r}: the value is not valid YAML ({exc})")
            continue
        bad_index = _check_list_indices(cfg, key)
        if bad_index:
            problems.append(f"override {raw!r}: {bad_index}")
            continue
        existing = OmegaConf.select(cfg, key, default=None)
        other_component = (
            isinstance(parsed, dict)
            and "name" in parsed
            and isinstance(existing, DictConfig)
            and existing.get("name") != parsed["name"]
        )
        try:
            OmegaConf.update(cfg, key, parsed, merge=not other_component, force_add=True)
        except (OmegaConfBaseException, IndexError, KeyError, ValueError) as exc:
            problems.append(f"override {raw!r}: {str(exc).splitlines()[0]}")
    return problems


def _check_list_indices(cfg: Any, key: str) -> str | None:
    """A list index in ``key`` must address an existing item (lists do not grow by override)."""
    from omegaconf import DictConfig, ListConfig

    node = cfg
    walked = []
    for part in key.split("."):
        if isinstance(node, ListConfig):
            if not part.isdigit():
                return (
                    f"{'.'.join(walked)} is a list: index it with a number, e.g. {'.'.join(walked + ['0'])}"
                )
            if int(part) >= len(node):
                return f"{'.'.join(walked)} has {len(node)} item(s); there is no index {part}"
            node = node[int(part)]
        elif isinstance(node, DictConfig):
            if part not in node:
                return None  # a new key below here: nothing more to check
            node = node._get_node(part)  # keep interpolations unresolved
        else:
            return None
        walked.append(part)
    return None


def load_recipe(
    path: str | Path,
    overrides: Sequence[str] | None = None,
    validate: bool = True,
    check_build: bool = False,
    include: Sequence[str | Path] = (),
) -> Any:
    """Load a recipe file, apply overrides, validate, and return it merged over the schema.

    ``include``: more recipe files whose tasks join this one's (multi-task composition: ``lumina train A.yaml
    B.yaml``). ``run``, ``model`` and ``train`` come from the first file; the run is named after all of them
    (``A+B``) unless an override names it; overrides apply to the composed recipe (``tasks.1`` is B's first
    task).

    ``check_build`` also runs validation's third pass (:mod:`.buildcheck`: building plugins and both dataset
    splits), as ``lumina config validate`` does; commands that build the run anyway leave it off, so a
    dataset's files are not indexed twice.

    Returns:
        an OmegaConf ``DictConfig`` typed by :class:`~lumina_core.config.schema.RecipeConfig`.

    Raises:
        RecipeError: listing every problem at once (including a missing or unparsable file).
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    source = " + ".join(str(x) for x in [path, *include])
    raws = []
    for one in [path, *include]:
        p = Path(one)
        if not p.is_file():
            raise RecipeError(str(one), [f"recipe file not found (looked for {p.resolve()})"])
        try:
            loaded = OmegaConf.load(p)
        except Exception as exc:  # noqa: BLE001 - YAML syntax errors come in several types
            raise RecipeError(str(one), [f"not valid YAML: {exc}"]) from exc
        if not isinstance(loaded, DictConfig):
            raise RecipeError(str(one), ["a recipe is a mapping with run, model, tasks and train"])
        raws.append(loaded)
    raw = raws[0] if len(raws) == 1 else compose(raws)
    problems = apply_overrides(raw, overrides)
    from lumina_core.config.typed import normalise_components

    raw = OmegaConf.create(normalise_components(OmegaConf.to_container(raw, resolve=False)))
    if validate:
        from lumina_core.config.validate import validate_recipe

        problems += validate_recipe(raw, check_build=check_build)
    if problems:
        raise RecipeError(source, problems)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RecipeConfig), raw)
    except OmegaConfBaseException as exc:  # only reachable with validate=False
        raise RecipeError(source, [str(exc).splitlines()[0]]) from exc
    return cfg


def compose(recipes: Sequence[Any]) -> Any:
    """One multi-task recipe from several: the first's ``run``, ``model`` and ``train``, every recipe's
    tasks in order, the run named ``<name1>+<name2>+...``."""
    from omegaconf import OmegaConf

    first = recipes[0]
    out = OmegaConf.create(OmegaConf.to_container(first, resolve=False))
    tasks = []
    for r in recipes:
        tasks += list(OmegaConf.to_container(r, resolve=False).get("tasks") or [])
    out.tasks = tasks
    names = [str(OmegaConf.select(r, "run.name", default="run")) for r in recipes]
    out.run = out.get("run") or {}
    out.run.name = "+".join(names)
    return out


def recipe_header_command(path: str | Path) -> str | None:
    """The command in a recipe's leading comment (``# Run: lumina train recipes/x/y.yaml``), or None."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("#"):
                return None
            m = _HEADER.match(stripped)
            if m:
                return m.group(1).strip()
    return None

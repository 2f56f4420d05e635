"""What was generated, from what: ``manifest.json`` beside the files that ``sample`` and ``eval`` write.

Each entry names one written file and everything needed to make it again or to read it: the task, the
condition (caption or class), the seed, the sampler settings (solver, steps, time grid, guidance scale) and
the checkpoint. File names carry a short slug of the caption, so a folder of samples reads without the
manifest too: ``shapes_00003_a-red-circle-on-the-left.png``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def slug(condition: Any, max_len: int = 40) -> str:
    """A file-name-safe short form of a condition: ``"A red circle!"`` -> ``"a-red-circle"``,
    ``3`` -> ``"class-3"``, None -> ``"uncond"``."""
    if condition is None:
        return "uncond"
    if isinstance(condition, int) and not isinstance(condition, bool):
        return f"class-{condition}"
    text = re.sub(r"[^a-z0-9]+", "-", str(condition).lower()).strip("-")
    return text[:max_len].rstrip("-") or "empty"


#: :meth:`Manifest.save_if_due` rewrites the manifest once the entries not yet in it reach this fraction of
#: those that are: after every batch at first, then less often, so the rewrites of a long run cost about
#: ``1 / SAVE_GROWTH`` times writing the final manifest once, and a run killed outright (``kill -9``) leaves at
#: most this fraction of its files (plus one batch) out of the manifest
SAVE_GROWTH = 0.05


class Manifest:
    """Entries for the files written into ``out_dir``; :meth:`save` writes ``out_dir/manifest.json``
    atomically (a temporary file, then a rename), merging with the entries that were there before this
    manifest first saved. Whoever writes files one batch at a time calls :meth:`save_if_due` after each, so a
    run that is stopped keeps its files mapped to their conditions."""

    def __init__(self, out_dir: str | Path, common: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.common = _jsonable(common)
        self.entries: list[dict[str, Any]] = []
        self._saved = 0  # entries in the manifest on disk
        self._previous: list[dict[str, Any]] | None = None  # entries of an earlier run in the same folder

    def add(self, files: Sequence[str | Path], **fields: Any) -> None:
        for f in files:
            self.entries.append({"file": Path(f).name, **_jsonable(fields)})

    def save_if_due(self) -> Path | None:
        """:meth:`save` when the unsaved entries reach ``SAVE_GROWTH`` of the saved ones (at least one)."""
        unsaved = len(self.entries) - self._saved
        if unsaved > 0 and unsaved >= SAVE_GROWTH * self._saved:
            return self.save()
        return None

    def save(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / MANIFEST
        if self._previous is None:
            self._previous = []
            if path.is_file():
                try:
                    self._previous = json.loads(path.read_text()).get("files", [])
                except (OSError, ValueError):
                    self._previous = []
        mine = {e["file"] for e in self.entries}
        files = [e for e in self._previous if e.get("file") not in mine] + [
            {**self.common, **e} for e in self.entries
        ]
        tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"files": files}, indent=2) + "\n")
        os.replace(tmp, path)
        self._saved = len(self.entries)
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return _jsonable(OmegaConf.to_container(value, resolve=True))
    except ImportError:  # pragma: no cover
        pass
    return str(value)

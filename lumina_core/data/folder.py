"""A user's folder of ``FILE.<ext>`` + ``FILE.txt`` (caption) pairs, listed deterministically.

Optional side files with the same stem: ``FILE.json`` (metadata) and ``FILE.cls`` (an integer label).
Used by the image / audio / point-cloud folder datasets and by :func:`lumina_core.data.shards.pack_folder`.

Missing captions are an error by default (``missing_caption="error"``, listing the files); a caption file
that is empty or holds only whitespace counts as missing (it would silently train an unconditional sample). Pass
``missing_caption="empty"`` to read them as the empty caption ``""`` (the null condition, i.e. trained as
unconditional samples) or ``"skip"`` to leave those files out. Captions are read as UTF-8 and stripped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("lumina.data")

#: Data extensions recognised when none are given (images, audio, point clouds / meshes).
DEFAULT_EXTENSIONS = (
    "png", "jpg", "jpeg", "webp", "bmp",
    "wav", "flac", "ogg", "mp3",
    "ply", "obj", "off", "stl", "npy", "npz",
)  # fmt: skip
SIDE_EXTENSIONS = ("json", "cls")
MISSING_CAPTION_MODES = ("error", "empty", "skip")


@dataclass(frozen=True)
class FolderPair:
    """One data file with its caption and side files.

    Attributes:
        key: the path relative to the folder without extension, POSIX style (``"cats/tom"``).
        path: the data file.
        caption_path: the ``.txt`` caption file, or None when it is missing (``missing_caption="empty"``).
        extras: side files by extension, e.g. ``{"json": Path, "cls": Path}``.
    """

    key: str
    path: Path
    caption_path: Path | None
    extras: dict[str, Path] = field(default_factory=dict)

    @property
    def ext(self) -> str:
        """The data file's extension, lower case, without the dot."""
        return self.path.suffix[1:].lower()

    def caption(self) -> str:
        """The caption text ("" when there is no caption file)."""
        return "" if self.caption_path is None else read_caption(self.caption_path)


class PairList(list):
    """What :func:`list_pairs` returns: the pairs (a list of :class:`FolderPair`), plus ``without_caption``,
    the data files that had no caption or a blank one (those left out under ``missing_caption="skip"``
    included), so that what was skipped can still be counted."""

    def __init__(self, pairs: Iterable[FolderPair] = (), without_caption: Iterable[Path] = ()) -> None:
        super().__init__(pairs)
        self.without_caption: list[Path] = list(without_caption)


def read_caption(path: str | os.PathLike) -> str:
    """Read a caption file as UTF-8 text, stripped of surrounding whitespace."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as err:
        raise ValueError(f"caption file {path} is not UTF-8 text: {err}") from err


def is_blank_caption(path: str | os.PathLike, chunk: int = 4096) -> bool:
    """True when the caption file holds nothing but whitespace (0 bytes included): such a file would train its
    sample with the empty caption, unconditionally, without anyone having asked for that. Reads only until
    the first non-whitespace character (for a real caption, the first block)."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if block.strip():
                return False
    return True


def _normalise_exts(extensions: Iterable[str] | str | None) -> tuple[str, ...]:
    if extensions is None:
        return DEFAULT_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    exts = tuple(e.lower().lstrip(".") for e in extensions)
    if not exts or any(not e for e in exts):
        raise ValueError(f"extensions must be non-empty names such as 'png'; got {list(extensions)}")
    return exts


def list_pairs(
    folder: str | os.PathLike,
    extensions: Iterable[str] | str | None = None,
    caption_ext: str = "txt",
    missing_caption: str = "error",
    recursive: bool = True,
) -> PairList:
    """List ``FILE.<ext>`` + ``FILE.<caption_ext>`` pairs under ``folder``, sorted by key (a :class:`PairList`:
    the files without a caption are in its ``without_caption``, skipped or not).

    Hidden files and folders (names starting with ".") are ignored; extensions match case-insensitively.
    A stem with two data files (``a.png`` and ``a.jpg``) is ambiguous and raises ValueError.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no data files, missing captions (with ``missing_caption="error"``), ambiguous stems.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist (or is not a folder)")
    exts = _normalise_exts(extensions)
    caption_ext = caption_ext.lower().lstrip(".")
    if caption_ext in exts or any(e in SIDE_EXTENSIONS for e in exts):
        raise ValueError(f"data extensions {list(exts)} overlap the caption/side extensions")
    if missing_caption not in MISSING_CAPTION_MODES:
        raise ValueError(f"missing_caption must be one of {MISSING_CAPTION_MODES}; got {missing_caption!r}")

    by_stem: dict[str, dict[str, Path]] = {}
    files = root.rglob("*") if recursive else root.glob("*")
    for path in files:
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or not path.suffix:
            continue
        stem = rel.with_suffix("").as_posix()
        by_stem.setdefault(stem, {})[path.suffix[1:].lower()] = path

    pairs, missing, blank, orphans = [], [], [], 0
    for stem in sorted(by_stem):
        found = by_stem[stem]
        data = [e for e in exts if e in found]
        if not data:
            orphans += caption_ext in found
            continue
        if len(data) > 1:
            raise ValueError(f"{root / stem}: more than one data file for one stem ({', '.join(data)})")
        caption = found.get(caption_ext)
        if caption is not None and is_blank_caption(caption):
            blank.append(found[data[0]])
            caption = None  # an empty caption file is a missing caption, counted as one
        if caption is None:
            missing.append(found[data[0]])
            if missing_caption == "skip":
                continue
        extras = {e: found[e] for e in SIDE_EXTENSIONS if e in found}
        pairs.append(FolderPair(stem, found[data[0]], caption, extras))

    if missing and missing_caption == "error":
        shown = ", ".join(str(p.relative_to(root)) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        empty = f" ({len(blank)} of them an empty or blank .{caption_ext} file)" if blank else ""
        raise ValueError(
            f"{len(missing)} file(s) in {root} have no .{caption_ext} caption{empty}: {shown}{more}. Add the captions, "
            "or pass missing_caption='empty' (train them with the empty caption) or 'skip' (leave them out); "
            "`lumina data pack` takes --missing-caption empty|skip"
        )
    if missing:
        logger.warning(
            "%d file(s) in %s have no caption%s (%s)", len(missing), root,
            f", {len(blank)} of them an empty .{caption_ext} file" if blank else "", missing_caption,
        )  # fmt: skip
    if orphans:
        logger.warning("%d caption file(s) in %s have no data file; ignored", orphans, root)
    if not pairs:
        raise ValueError(
            f"no data files with extensions {list(exts)} in {root}"
            + (" (searched recursively)" if recursive else "")
            + (f"; {len(missing)} left out for want of a caption (missing_caption='skip')" if missing else "")
        )
    return PairList(pairs, missing)

"""A user's folder of labelled images for recognition: one sub-folder per class, or a labels file.

Layouts (``root`` is the folder):

* class folders: ``root/<class>/<any path>.png`` - the class is the first folder under ``root``;
* a labels file: ``labels: labels.csv`` - lines ``<image path relative to root>,<class>`` (``#`` starts a
  comment, a header line ``path,label`` is allowed; a tab separates as well as a comma).

``classes`` declares the classes (their order gives the class ids); without it they are the class folders
(or the labels file's labels) in sorted order. Problems are errors that name the file and line: a label
outside the declared classes, a declared class with no images, a labels line pointing at a missing file.
Images that cannot be decoded raise ``CorruptSampleError`` naming the file; built by
``lumina_core.data.build_dataset`` they are skipped and counted (the item is replaced by the next readable
one). Every ``1/val_fraction``-th image of each class is
held out for val/test, so both splits see every class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumina_core.registry import DATASETS

from .folder import IMAGE_EXTENSIONS, SPLITS, _ReadsFiles, decode_image


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def scan_class_folders(root: Path) -> list[tuple[Path, str]]:
    """``(image, class)`` for every image under ``root/<class>/`` (sorted), the class its top folder."""
    out: list[tuple[Path, str]] = []
    loose = sorted(p.name for p in root.iterdir() if _is_image(p))
    if loose:
        raise ValueError(
            f"labelled_images: {root} has images directly inside it ({', '.join(loose[:3])}"
            f"{', ...' if len(loose) > 3 else ''}); put each image in the folder of its class "
            "(root/<class>/image.png) or give a labels file"
        )
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in folder.rglob("*") if _is_image(p))
        if not images:
            raise ValueError(
                f"labelled_images: class folder {folder} has no images (extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        out += [(p, folder.name) for p in images]
    return out


def read_labels_file(root: Path, labels: str | Path) -> list[tuple[Path, str]]:
    """``(image, class)`` pairs from a ``path,label`` file (paths relative to ``root``)."""
    path = Path(labels) if Path(labels).is_absolute() else root / labels
    if not path.is_file():
        raise FileNotFoundError(f"labelled_images: labels file {path} does not exist")
    out: list[tuple[Path, str]] = []
    problems: list[str] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.replace("\t", ",").split(",")]
        if n == 1 and [p.lower() for p in parts[:2]] == ["path", "label"]:
            continue
        if len(parts) != 2 or not all(parts):
            problems.append(f"line {n}: expected '<image path>,<class>', got {raw.strip()!r}")
            continue
        image = root / parts[0]
        if not image.is_file():
            problems.append(f"line {n}: image {image} does not exist")
            continue
        out.append((image, parts[1]))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ValueError(f"labelled_images: labels file {path}: {shown}")
    if not out:
        raise ValueError(f"labelled_images: labels file {path} lists no images")
    return out


@DATASETS.register("labelled_images")
class LabelledImagesDataset(_ReadsFiles):
    """Labelled images for classification: items ``{"sample", "condition": class id, "meta": {"label"}}``.

    Args:
        root: the folder.
        labels: a labels file (relative to ``root`` or absolute); None: one sub-folder per class.
        classes: the declared class names, in id order; None: the labels found, sorted.
        size: square output side in pixels (resize to cover, centre crop).
        channels: 3 (RGB) or 1 (grey).
        split: "train", "val" or "test".
        val_fraction: hold out every ``1/val_fraction``-th image of each class (0: every split sees all).
    """

    modality = "image"
    condition_kind = "class"  # items carry integer labels

    def __init__(
        self,
        root: str,
        labels: str | None = None,
        classes: Sequence[str] | None = None,
        size: int = 32,
        channels: int = 3,
        split: str = "train",
        val_fraction: float = 0.2,
    ) -> None:
        base = Path(root)
        if not base.is_dir():
            raise FileNotFoundError(f"labelled_images: {root} is not a folder")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {channels}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
        pairs = read_labels_file(base, labels) if labels else scan_class_folders(base)
        found = sorted({c for _, c in pairs})
        names = [str(c) for c in classes] if classes is not None else found
        outside = sorted(set(found) - set(names))
        if outside:
            raise ValueError(
                f"labelled_images: {root} has labels outside the declared classes: {outside}; "
                f"declared: {names}"
            )
        empty = [c for c in names if c not in found]
        if empty:
            raise ValueError(f"labelled_images: declared classes with no images in {root}: {empty}")
        self.class_names = names
        index = {c: i for i, c in enumerate(names)}
        k = max(2, round(1 / val_fraction)) if val_fraction else 0
        chosen: list[tuple[Path, int]] = []
        for c in names:
            members = [p for p, label in pairs if label == c]
            for j, p in enumerate(members):
                held = bool(k) and j % k == k - 1
                if not k or held == (split != "train"):
                    chosen.append((p, index[c]))
        if not chosen:
            raise ValueError(
                f"labelled_images: the {split!r} split of {root} is empty (val_fraction={val_fraction})"
            )
        self.items = chosen
        self.root, self.split, self.size, self.channels = base, split, int(size), int(channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"LabelledImagesDataset({str(self.root)!r}, split={self.split!r}, {len(self)} images)"

    def item_name(self, index: int) -> str:
        return str(self.items[index][0])

    def _read(self, index: int) -> dict[str, Any]:
        path, cls = self.items[index]
        image = decode_image(path, (self.size, self.size), self.channels)
        return {
            "sample": image,
            "condition": cls,
            "meta": {"label": self.class_names[cls], "path": str(path)},
        }

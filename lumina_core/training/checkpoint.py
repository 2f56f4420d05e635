"""Checkpoints: safetensors weights plus a tensors-and-primitives training state, written atomically.

Layout of ``<run_dir>/checkpoints/``::

    step_0000200/
        model.safetensors      trainable weights: the LuminaModel ("model.*") and trainable conditioners
                               ("conditioners.<task>.*"); frozen pretrained encoders are not stored
        ema.safetensors        the EMA of the same tensors
        state.pt               optimiser, LR schedule, step, RNG states, data position (torch.save of
                               tensors, numbers, strings, lists and dicts only: loads with weights_only=True)
        meta.json              step, time, a human-readable summary
    last                       a text file naming the newest complete checkpoint directory

A *converted* checkpoint (what ``lumina convert`` writes from a released or diffusers file, see
:mod:`lumina_core.interop.formats`) is a folder with ``model.safetensors`` (a LuminaModel state dict) and a
``config.json`` whose ``format`` is ``"lumina"``. It holds weights only: it can be sampled and evaluated
(:func:`resolve_weights`), not resumed.

A checkpoint is written into a hidden temporary directory, flushed, then renamed into place; ``last`` is
rewritten the same way (temporary file, then ``os.replace``). A kill at any moment leaves either the previous
or the new checkpoint, never a half-written one under a real name.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

LAST = "last"
MODEL_FILE, EMA_FILE, STATE_FILE, META_FILE = "model.safetensors", "ema.safetensors", "state.pt", "meta.json"
CONVERTED_CONFIG = "config.json"


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _contiguous(state: dict[str, Tensor]) -> dict[str, Tensor]:
    # safetensors refuses shared or non-contiguous storage: store independent contiguous copies
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    root: str | Path,
    step: int,
    weights: dict[str, Tensor],
    ema: dict[str, Tensor] | None,
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
    keep: int | None = 3,
) -> Path:
    """Write checkpoint ``root/step_<step>`` atomically, point ``root/last`` at it, keep the newest ``keep``."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous(weights), str(tmp / MODEL_FILE))
    if ema is not None:
        save_file(_contiguous(ema), str(tmp / EMA_FILE))
    torch.save(state, tmp / STATE_FILE)
    info = {"step": int(step), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(meta or {})}
    (tmp / META_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): move the old one out of the way
        old = root / f".old-{checkpoint_name(step)}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    _write_pointer(root, final.name)
    if keep:
        _prune(root, keep, protect=final.name)
    return final


def _write_pointer(root: Path, name: str) -> None:
    tmp = root / f".{LAST}.tmp-{os.getpid()}"
    tmp.write_text(name + "\n")
    _fsync_file(tmp)
    os.replace(tmp, root / LAST)
    _fsync_dir(root)


def _prune(root: Path, keep: int, protect: str) -> None:
    ckpts = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for p in ckpts[:-keep]:
        if p.name != protect:
            shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint(path_or_last: str | Path, run_dir: str | Path | None = None) -> Path:
    """A checkpoint directory from a path, a run directory, a ``checkpoints`` folder, the ``last`` pointer
    file itself (``runs/NAME/checkpoints/last``) or ``"last"``."""
    p = Path(path_or_last)
    if str(path_or_last) == LAST:
        if run_dir is None:
            raise ValueError('resume="last" needs the run directory')
        p = Path(run_dir) / "checkpoints"
    elif p.name == LAST and p.is_file():  # the pointer file: resolve from its folder
        p = p.parent
    for candidate in (p, p / "checkpoints"):
        if (candidate / LAST).is_file():
            name = (candidate / LAST).read_text().strip()
            p = candidate / name
            break
    if not (p / MODEL_FILE).is_file() or not (p / STATE_FILE).is_file():
        hint = (
            f"; {p} is a converted checkpoint (weights only, from `lumina convert`): it can be sampled or "
            "evaluated, not resumed"
            if is_converted(p)
            else ""
        )
        raise FileNotFoundError(
            f"no complete checkpoint at {p} (expected {MODEL_FILE} and {STATE_FILE}); give a checkpoint "
            f"directory, a run directory with checkpoints/{LAST}, or 'last'{hint}"
        )
    return p


def is_converted(path: str | Path) -> bool:
    """True for a folder written by ``lumina convert``: ``model.safetensors`` + ``config.json`` with
    ``"format": "lumina"``."""
    p = Path(path)
    if not (p / MODEL_FILE).is_file() or not (p / CONVERTED_CONFIG).is_file():
        return False
    try:
        meta = json.loads((p / CONVERTED_CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == "lumina"


def resolve_weights(path_or_last: str | Path, run_dir: str | Path | None = None) -> Path:
    """Where to read weights for sampling or evaluation: a converted checkpoint folder as it is, otherwise
    :func:`resolve_checkpoint` (a training checkpoint, a run directory or ``"last"``)."""
    if str(path_or_last) != LAST and is_converted(path_or_last):
        return Path(path_or_last)
    return resolve_checkpoint(path_or_last, run_dir)


def load_weights(ckpt: Path, which: str = "model") -> dict[str, Tensor]:
    from safetensors.torch import load_file

    file = ckpt / (EMA_FILE if which == "ema" else MODEL_FILE)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} has no {file.name}")
    return load_file(str(file))


def load_state(ckpt: Path) -> dict[str, Any]:
    return torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)


def clean_temporaries(root: str | Path) -> None:
    """Remove half-written checkpoints left by a killed run (hidden ``.tmp-*`` / ``.old-*`` entries)."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith((".tmp-", ".old-", f".{LAST}.tmp-")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

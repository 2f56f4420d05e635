"""Checkpoints: safetensors weights plus a tensors-and-primitives training state, written atomically.

Layout of ``<run_dir>/checkpoints/``::

    step_0000200/
        model.safetensors      trainable weights: the LuminaModel ("model.*") and trainable conditioners
                               ("conditioners.<task>.*"); frozen pretrained encoders are not stored
        ema.safetensors        the EMA of the same tensors
        state.pt               optimiser, LR schedule, step, RNG states, data position (torch.save of
                               tensors, numbers, strings, lists and dicts only: loads with weights_only=True)
        meta.json              step, time, a human-readable summary, and each file's size and SHA-256
    last                       a text file naming the newest complete checkpoint directory

A *converted* checkpoint (what ``lumina convert`` writes from a released or diffusers file, see
:mod:`lumina_core.interop.formats`) is a folder with ``model.safetensors`` (a LuminaModel state dict) and a
``config.json`` whose ``format`` is ``"lumina"``. It holds weights only: it can be sampled and evaluated
(:func:`resolve_weights`), not resumed.

A checkpoint is written into a hidden temporary directory, flushed, then renamed into place; ``last`` is
rewritten the same way (temporary file, then ``os.replace``). A kill at any moment leaves either the previous
or the new checkpoint, never a half-written one under a real name. A full disk (or a spent quota) while writing
removes the temporary directory and raises :class:`lumina_core.safe_write.DiskFull`, naming the file that did
not fit, the space the checkpoint needs and the space free: the previous checkpoint stays the newest.

Reading verifies: every file is checked against the size and SHA-256 that ``meta.json`` records, and a file
that fails (truncated, overwritten, bit rot) raises :class:`CheckpointError` naming it. ``resume="last"``
then falls back to the newest intact checkpoint, with a warning naming the damaged one. ``state.pt`` is read
with ``weights_only=True``: a file holding anything but tensors and primitives is refused, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.safe_write import disk_full, is_out_of_space, write_atomic

LAST = "last"
MODEL_FILE, EMA_FILE, STATE_FILE, META_FILE = "model.safetensors", "ema.safetensors", "state.pt", "meta.json"
CONVERTED_CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: a damaged or missing file, or weights that do not fit the recipe."""


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
    _refuse_nonfinite(weights, ema)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    writing = MODEL_FILE
    try:
        save_file(_contiguous(weights), str(tmp / MODEL_FILE))
        if ema is not None:
            writing = EMA_FILE
            save_file(_contiguous(ema), str(tmp / EMA_FILE))
        writing = STATE_FILE
        with open(tmp / STATE_FILE, "wb") as f:  # a Python file: a full disk is an OSError, not torch's riddle
            torch.save(state, f)
        files = {f.name: _fingerprint(f) for f in sorted(tmp.iterdir())}
        info = {"step": int(step), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(meta or {}), "files": files}
        writing = META_FILE
        (tmp / META_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        for f in tmp.iterdir():  # a file system that allocates late reports a full disk here
            writing = f.name
            _fsync_file(f)
        _fsync_dir(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a partial checkpoint behind
        if isinstance(exc, Exception) and is_out_of_space(exc):
            raise _no_room(root, final / writing, step, weights, ema, state) from exc
        raise
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


def _refuse_nonfinite(weights: dict[str, Tensor], ema: dict[str, Tensor] | None) -> None:
    """CheckpointError naming the first tensors that hold a NaN or an infinity: a checkpoint of such weights
    only ever samples NaN (black images), so none is written."""
    bad = [
        f"{which}:{k}"
        for which, state in (("model", weights), ("ema", ema or {}))
        for k, v in state.items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise CheckpointError(
            f"refusing to write a checkpoint with non-finite weights (NaN or infinity) in {len(bad)} tensor(s): "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; the weights diverged or were merged with a "
            "non-finite scale"
        )


def _write_pointer(root: Path, name: str) -> None:
    write_atomic(root / LAST, name + "\n", "the pointer to the newest checkpoint")
    _fsync_dir(root)


def _tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (nested dicts, lists and tuples), as they are written."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _no_room(
    root: Path, file: Path, step: int, weights: dict[str, Tensor], ema: dict[str, Tensor] | None, state: Any
) -> Exception:
    """The one-paragraph error for a checkpoint that did not fit on its disk (the partial one is removed)."""
    needed = _tensor_bytes(weights) + _tensor_bytes(ema) + _tensor_bytes(state)
    previous = (root / LAST).read_text().strip() if (root / LAST).is_file() else None
    kept = (
        f"the previous checkpoint, {root / previous}, is intact" if previous else "no earlier checkpoint exists"
    )
    return disk_full(
        file,
        needed,
        f"the checkpoint of step {step}",
        f"The partial checkpoint was removed and {kept}. Free some space (or point run.output_dir at a larger "
        "disk), then continue with `lumina train RECIPE --resume last`.",
    )


def _prune(root: Path, keep: int, protect: str) -> None:
    ckpts = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for p in ckpts[:-keep]:
        if p.name != protect:
            shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint(
    path_or_last: str | Path, run_dir: str | Path | None = None, fallback: bool = True
) -> Path:
    """A checkpoint directory from a path, a run directory, a ``checkpoints`` folder, the ``last`` pointer
    file itself (``runs/NAME/checkpoints/last``) or ``"last"``.

    Through ``last`` (the word, the pointer file, or a run / checkpoints folder), a checkpoint that fails
    :func:`verify` is passed over for the newest intact one, with a warning naming what is damaged
    (``fallback=False``: refused, naming the damaged file and the newest intact checkpoint); a checkpoint
    directory named directly is verified and refused (CheckpointError) when damaged."""
    p = Path(path_or_last)
    if str(path_or_last) == LAST:
        if run_dir is None:
            raise ValueError('resume="last" needs the run directory')
        p = Path(run_dir) / "checkpoints"
    elif p.name == LAST and p.is_file():  # the pointer file: resolve from its folder
        p = p.parent
    root = None
    for candidate in (p, p / "checkpoints"):
        if (candidate / LAST).is_file():
            root = candidate
            p = candidate / (candidate / LAST).read_text().strip()
            break
    if not (p / MODEL_FILE).is_file() or not (p / STATE_FILE).is_file():
        if root is not None:
            why = f"its pointer {root / LAST} names {p.name}, which is incomplete"
            return _newest_intact(root, p, why, fallback)
        _refuse_absent(path_or_last, p, run_dir)
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
    try:
        verify(p)
    except CheckpointError as exc:
        if root is None:
            raise
        return _newest_intact(root, p, str(exc), fallback)
    return p


def _refuse_absent(asked: str | Path, p: Path, run_dir: str | Path | None) -> None:
    """FileNotFoundError with the real cause when there is nothing at all where a checkpoint was looked for:
    no run folder (never trained, or run.output_dir is relative to another folder), a run folder without a
    checkpoint yet, or a ``--ckpt`` path that does not exist."""
    if str(asked) == LAST and run_dir is not None:
        run = Path(run_dir)
        if not run.exists():
            raise FileNotFoundError(
                f"there is no run folder at {run} (run.output_dir; {run.resolve()} from here): the recipe has not "
                "been trained here. Train it with `lumina train RECIPE` (a relative run.output_dir is relative "
                "to the folder you run in), or give the checkpoint with --ckpt"
            )
        if not any(run.glob(f"checkpoints/{LAST}")) and not any(run.glob("checkpoints/step_*")):
            raise FileNotFoundError(
                f"the run folder {run} holds no checkpoint yet (the run stopped before its first checkpoint, "
                "or is still at its first steps); give another with --ckpt"
            )
    elif not p.exists():
        raise FileNotFoundError(
            f"no complete checkpoint at {asked}: nothing exists there ({p.resolve()}); give a checkpoint folder, "
            "a run folder, or 'last'"
        )


def _newest_intact(root: Path, broken: Path, why: str, fallback: bool = True) -> Path:
    """The newest checkpoint under ``root`` other than ``broken`` that verifies; warns about ``broken``
    (``fallback=False``: raises CheckpointError naming both instead)."""
    candidates = sorted(
        (c for c in root.iterdir() if c.is_dir() and c.name.startswith("step_") and c.name != broken.name),
        reverse=True,
    )
    damaged = [why]
    for c in candidates:
        try:
            verify(c)
        except (CheckpointError, FileNotFoundError) as exc:
            damaged.append(str(exc))
            continue
        if not fallback:
            raise CheckpointError(f"{why}. The newest intact checkpoint is {c}: pass it with --ckpt")
        from lumina_core.errors import LuminaWarning

        warnings.warn(
            f"checkpoint {broken} cannot be used ({why}); falling back to {c.name}, the newest intact "
            "checkpoint",
            LuminaWarning,
            stacklevel=3,
        )
        return c
    raise CheckpointError(
        f"no intact checkpoint under {root}: " + "; ".join(damaged) + ". Start again with --overwrite, or "
        "restore the files from a copy"
    )


def _fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def verify(ckpt: str | Path, names: tuple[str, ...] | None = None) -> None:
    """Check ``ckpt``'s files (all, or ``names``) against the sizes and SHA-256 sums in its ``meta.json``.

    Raises CheckpointError naming the first damaged or missing file. Checkpoints without ``meta.json``, or
    written before sums were recorded (no ``files`` in it), are only checked for presence, with a
    :class:`~lumina_core.errors.LuminaWarning` saying they cannot be verified."""
    ckpt = Path(ckpt)
    meta_path = ckpt / META_FILE
    recorded: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            recorded = json.loads(meta_path.read_text()).get("files") or {}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{meta_path} cannot be read ({exc}): the checkpoint is damaged") from exc
        if not recorded:
            _warn_unverified(ckpt, f"its {META_FILE} records no file sizes or checksums (an older checkpoint)")
    else:
        _warn_unverified(ckpt, f"it has no {META_FILE}, where each file's size and SHA-256 are recorded")
    for name in names or tuple(recorded):
        f = ckpt / name
        if not f.is_file():
            if name == EMA_FILE and name not in recorded:
                continue
            raise CheckpointError(f"{f} is missing: the checkpoint is incomplete")
        want = recorded.get(name)
        if want is None:
            continue
        size = f.stat().st_size
        if size != want["bytes"]:
            raise CheckpointError(
                f"{f} is damaged: {size} bytes where {want['bytes']} were written (truncated or overwritten)"
            )
        if _fingerprint(f)["sha256"] != want["sha256"]:
            raise CheckpointError(f"{f} is damaged: its SHA-256 differs from the one recorded when it was written")


_WARNED_UNVERIFIED: set[str] = set()


def _warn_unverified(ckpt: Path, why: str) -> None:
    """Warn, once per checkpoint and process (it is read file by file), that ``ckpt`` is used unverified."""
    from lumina_core.errors import LuminaWarning

    if str(ckpt.resolve()) in _WARNED_UNVERIFIED:
        return
    _WARNED_UNVERIFIED.add(str(ckpt.resolve()))
    warnings.warn(
        f"checkpoint {ckpt} cannot be verified ({why}); it is used as it is, so damage to its files would go "
        "unnoticed",
        LuminaWarning,
        stacklevel=3,
    )


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
    return resolve_checkpoint(path_or_last, run_dir, fallback=False)


def load_weights(ckpt: Path, which: str = "model") -> dict[str, Tensor]:
    """The flat weights of ``ckpt`` (``which``: ``"model"`` or ``"ema"``), verified; CheckpointError names a
    damaged file."""
    from safetensors.torch import load_file

    file = ckpt / (EMA_FILE if which == "ema" else MODEL_FILE)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} has no {file.name}")
    verify(ckpt, (file.name,))
    try:
        return load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise CheckpointError(f"{file} cannot be read ({exc}): the file is damaged (truncated?)") from exc


def load_state(ckpt: Path) -> dict[str, Any]:
    """The training state of ``ckpt``, verified, read with ``weights_only=True`` (no pickled code runs)."""
    file = ckpt / STATE_FILE
    verify(ckpt, (STATE_FILE,))
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{file} holds objects other than tensors, numbers, strings, lists and dicts; Lumina never "
            "unpickles code from a checkpoint, so it is refused. Was it written by Lumina? Resume from "
            "another checkpoint, or start again with --overwrite"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file} cannot be read ({exc}): the file is damaged (truncated?)") from exc


def task_steps(ckpt: str | Path) -> dict[str, int] | None:
    """The training steps each task has had up to checkpoint ``ckpt`` (its batches drawn: under
    ``train.mixing: weighted`` the draws, under ``all`` every step), from its ``meta.json``; None when the
    checkpoint does not record them (a converted checkpoint, an older one)."""
    try:
        meta = json.loads((Path(ckpt) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return task_steps_in(meta)


def task_steps_in(meta: dict[str, Any]) -> dict[str, int] | None:
    """:func:`task_steps` from a checkpoint's ``meta.json`` already read (its parsed contents)."""
    positions = meta.get("data_position")
    if not isinstance(positions, dict):
        return None
    return {str(k): int(v) for k, v in positions.items()}


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

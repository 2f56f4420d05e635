"""Log-mel spectrograms as patch tokens on (time, frequency) axes, or as whole-frame tokens on (time,).

A normalised log-mel ``(F, N)`` (F mel bins, N frames) is right-padded along time to a multiple of the time
patch ``pt`` and cut into ``pf x pt`` patches: ``nt = ceil(N / pt)`` time patches by ``nf = F / pf``
frequency patches. Token ``k = i * nf + j`` (time-major, so a longer clip appends tokens) holds patch
``(i, j)`` flattened in (freq, time) order, and sits at position ``(i, j)``. With ``pf = F`` there is one
frequency patch and the positions can drop that axis (``axes="time"``): 1-D RoPE over time. The maps are
:mod:`lumina_core.grid`'s.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lumina_core import grid
from lumina_core.grid import grid_positions

#: the spectrogram's grid is (freq, time) but tokens run time-major (:func:`lumina_core.grid.patchify`)
TIME_MAJOR = (1, 0)


def patch_grid(n_frames: int, n_mels: int, pt: int, pf: int) -> tuple[int, int]:
    """(time patches, frequency patches) of an ``(n_mels, n_frames)`` spectrogram."""
    if n_mels % pf:
        raise ValueError(f"the frequency patch ({pf}) must divide the number of mel bins ({n_mels})")
    return math.ceil(n_frames / pt), n_mels // pf


def mel_to_patches(mel: Tensor, pt: int, pf: int, pad_value: float) -> Tensor:
    """``(F, N)`` -> ``(nt * nf, pf * pt)`` tokens; missing frames at the end are filled with ``pad_value``."""
    f, n = mel.shape
    nt, _ = patch_grid(n, f, pt, pf)
    padded = torch.nn.functional.pad(mel, (0, nt * pt - n), value=pad_value)  # (F, nt*pt)
    return grid.patchify(padded[None], (pf, pt), grid_order=TIME_MAJOR)


def patches_to_mel(tokens: Tensor, n_frames: int, n_mels: int, pt: int, pf: int) -> Tensor:
    """Inverse of :func:`mel_to_patches`: ``(nt * nf, pf * pt)`` -> ``(F, n_frames)``."""
    nt, _ = patch_grid(n_frames, n_mels, pt, pf)
    mel = grid.unpatchify(tokens, (1, n_mels, nt * pt), (pf, pt), grid_order=TIME_MAJOR)[0]
    return mel[:, :n_frames]


def patch_positions(nt: int, nf: int, axes: int, device: torch.device | str | None = None) -> Tensor:
    """``(nt * nf, axes)`` float positions: (time, freq) patch indices, or (time,) when ``axes == 1``."""
    return grid_positions(nt, nf, device=device)[:, :axes]

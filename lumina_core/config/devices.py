"""Whether ``run.device`` names a device this machine has.

``run.device`` is ``auto`` (the first CUDA GPU when torch sees one, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` (GPU number N, counted from 0) or ``mps`` (Apple's GPU). A well-formed name can still be one the
machine lacks (``cuda`` where torch sees no GPU, ``cuda:7`` on a machine with one, ``mps`` off a Mac):
:func:`device_problem` says so in one line, which ``lumina config validate`` lists with the recipe's other
problems, and :func:`require_device` raises it as :class:`DeviceUnavailable` (one paragraph, exit status 2)
before ``train``, ``sample``, ``eval``, ``serve`` or ``predict`` build anything.
"""

from __future__ import annotations

import re

from lumina_core.errors import LuminaError

#: the device names a recipe may give
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class DeviceUnavailable(LuminaError):
    """``run.device`` names a device this machine does not have (or a name that is no device)."""


def device_problem(device: str, processes: int = 1) -> str | None:
    """Why ``run.device = device`` cannot run here (a ``"run.device: ..."`` line), or None when it can.

    ``processes``: how many processes of a data-parallel run will each take a GPU of this machine
    (``train.devices``); a ``cuda`` run needs that many GPUs."""
    if not isinstance(device, str) or not DEVICE.match(device):
        return (
            f"run.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r} (run.device=auto "
            "takes the GPU when there is one, else the CPU)"
        )
    if device in ("auto", "cpu"):
        return None
    import torch

    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return None
        return (
            "run.device: 'mps' (Apple's GPU) is not available on this machine (torch.backends.mps.is_available() "
            "is False); use run.device=cpu, or run.device=auto to take a CUDA GPU when there is one"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return (
            f"run.device: {device!r} but torch sees no CUDA GPU on this machine (torch.cuda.is_available() is "
            "False: no GPU, no driver, or a CPU-only PyTorch build); use run.device=cpu, or run.device=auto to "
            "take the GPU when there is one"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        return (
            f"run.device: {device!r} but this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}; use "
            f"run.device=cuda:0 (or run.device=cpu)"
        )
    if processes > count:
        return (
            f"run.device: {device!r} with train.devices={processes} needs {processes} CUDA GPUs, but this machine "
            f"has {count}; use train.devices={count} (or run.device=cpu for CPU processes)"
        )
    return None


def require_device(device: str, processes: int = 1) -> None:
    """Raise :class:`DeviceUnavailable` when :func:`device_problem` finds ``device`` unusable here."""
    problem = device_problem(device, processes)
    if problem is not None:
        raise DeviceUnavailable(problem)

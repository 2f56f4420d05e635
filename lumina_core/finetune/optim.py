"""The optimiser of a run (``train.optimizer``): AdamW, or AdamW with 8-bit states from bitsandbytes.

AdamW keeps two fp32 moments per trained parameter (8 bytes each, on top of the parameter and its gradient).
bitsandbytes' block-wise 8-bit AdamW stores both moments in 8 bits with one fp32 scale per 2048-value block
(about 2 bytes per parameter: a quarter of the states); its "paged" variant puts the states in CUDA unified
memory, which the driver evicts to host RAM when the GPU runs short instead of failing with out-of-memory.
Both run on CUDA GPUs only. bitsandbytes is not a dependency of Lumina: install it yourself
(``pip install bitsandbytes``) to use them.

    adamw            torch.optim.AdamW (default; any device)
    adamw8bit        bitsandbytes.optim.AdamW8bit
    paged_adamw8bit  bitsandbytes.optim.PagedAdamW8bit

A LoRA run's parameters come in groups (:func:`lora_param_groups`): the factors ``A`` at ``train.lora.lr``
(default ``train.lr``), the factors ``B`` at ``lr_ratio`` times that (LoRA+, Hayou et al. 2024: with ``B = 0``
at the start, ``B``'s step sets how fast ``s B A`` moves, and a larger step for ``B`` than for ``A`` is what
learns features efficiently when the width is large), and what ``train.lora.train_also`` trains in full at
``train.lr``. The schedule (warm-up, cosine) multiplies every group's learning rate alike.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from typing import Any

#: the values of ``train.optimizer``: name -> (package, class) (None: torch's own AdamW)
OPTIMIZERS: dict[str, tuple[str, str] | None] = {
    "adamw": None,
    "adamw8bit": ("bitsandbytes", "AdamW8bit"),
    "paged_adamw8bit": ("bitsandbytes", "PagedAdamW8bit"),
}


def optimizer_problem(name: str, device: str | None = None, installed: bool | None = None) -> str | None:
    """Why ``train.optimizer = name`` cannot run on ``run.device`` (None: it can, as far as can be told without
    a GPU probe). ``installed`` overrides the package check (tests)."""
    if name not in OPTIMIZERS:
        return f"train.optimizer: expected one of {', '.join(OPTIMIZERS)}; got {name!r}"
    spec = OPTIMIZERS[name]
    if spec is None:
        return None
    package = spec[0]
    if installed is None:
        installed = importlib.util.find_spec(package) is not None
    if not installed:
        return (
            f"train.optimizer: {name!r} needs the {package} package, which is not installed (it is not a "
            f"dependency of Lumina): `pip install {package}` on a machine with a CUDA GPU, or use 'adamw'"
        )
    if device is not None and (device == "cpu" or device == "mps"):
        return (
            f"train.optimizer: {name!r} ({package}'s 8-bit states) runs on CUDA GPUs only, but run.device is "
            f"{device!r}; use 'adamw' there"
        )
    return None


def build_optimizer(
    name: str, params: Iterable[Any], lr: float, betas: tuple[float, float], weight_decay: float, device: Any = None
) -> Any:
    """The optimiser ``name`` (see :data:`OPTIMIZERS`) over ``params``; a ValueError that names the package and
    the fix when it cannot run here (bitsandbytes missing, or ``device`` not a CUDA device)."""
    import torch

    where = None if device is None else str(getattr(device, "type", device))
    problem = optimizer_problem(name, where)
    if problem is None and OPTIMIZERS[name] is not None and not torch.cuda.is_available():
        package = OPTIMIZERS[name][0]
        problem = f"train.optimizer: {name!r} ({package}'s 8-bit states) needs a CUDA GPU; none is available"
    if problem:
        raise ValueError(problem)
    spec = OPTIMIZERS[name]
    kwargs = {"lr": float(lr), "betas": tuple(float(b) for b in betas), "weight_decay": float(weight_decay)}
    if spec is None:
        return torch.optim.AdamW(params, **kwargs)
    module = importlib.import_module(f"{spec[0]}.optim")
    return getattr(module, spec[1])(params, **kwargs)


def lora_param_groups(
    named: Mapping[str, Any], lr: float, lora_lr: float | None = None, lr_ratio: float = 1.0
) -> list[dict[str, Any]]:
    """The optimiser's parameter groups of a LoRA run from its trained parameters ``{name: parameter}``:

        A factors (``.lora_A.``)          lr_A = lora_lr (None: lr)
        B factors (``.lora_B.``)          lr_B = lr_ratio * lr_A          (LoRA+)
        the rest (``train_also``)         lr

    Empty groups are left out; every group is named (``"lora_A"``, ``"lora_B"``, ``"full"``). When all three
    rates are equal there is one group (``"all"``), as in a run from before these settings, whose checkpoints
    then resume unchanged."""
    if lora_lr is not None and not (isinstance(lora_lr, (int, float)) and lora_lr > 0):
        raise ValueError(f"train.lora.lr must be a positive number (or null for train.lr); got {lora_lr!r}")
    if not (isinstance(lr_ratio, (int, float)) and lr_ratio > 0):
        raise ValueError(f"train.lora.lr_ratio must be a positive number (B's lr / A's lr); got {lr_ratio!r}")
    lr_a = float(lr if lora_lr is None else lora_lr)
    parts: dict[str, tuple[float, list[Any]]] = {
        "lora_A": (lr_a, []), "lora_B": (lr_a * float(lr_ratio), []), "full": (float(lr), [])
    }  # fmt: skip
    if lr_a == float(lr) and float(lr_ratio) == 1.0:
        return [{"name": "all", "params": list(named.values()), "lr": float(lr)}]
    for name, p in named.items():
        key = "lora_A" if ".lora_A." in name else "lora_B" if ".lora_B." in name else "full"
        parts[key][1].append(p)
    return [{"name": k, "params": ps, "lr": g_lr} for k, (g_lr, ps) in parts.items() if ps]

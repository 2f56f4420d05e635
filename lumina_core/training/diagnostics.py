"""Per-task diagnostics of a multi-task run (``train.diagnostics_every: N``): what each task does to the shared
trunk, to find where a composed run loses against each task alone (scale, conflict, schedule).

Every step that runs task k adds to k's record (``steps_k``, ``lr_sum_k``):

    lr_k          the learning rate of the step (its mean over k's steps since the last probe: ``lr_mean``)
    step_grad_k   |grad of the step on the trunk|, before clipping (with mixing "all": every task's summed)
    update_k      |theta_trunk after - theta_trunk before| of the step: what AdamW actually moved

Every N steps a *probe* computes, at the current weights, each task's loss on the last batch it trained on
and its gradient on the trunk's parameters alone (``torch.autograd.grad``: nothing is accumulated into the
weights' ``.grad``), from a generator of its own seeded by ``(run.seed, step)``, so the training run is the
same with or without diagnostics:

    loss_k, trunk_grad_norm_k = |g_k|,   cos_{j,k} = g_j . g_k / (|g_j| |g_k|)

Everything goes to TensorBoard as ``diag/<name>`` and, one JSON object per probe, to
``<run_dir>/diagnostics.jsonl``. The cumulative counts are saved with each checkpoint.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: the file (in the run folder) that receives one JSON line per probe
DIAGNOSTICS_FILE = "diagnostics.jsonl"


def flat_grad(loss: Tensor, params: list[nn.Parameter]) -> Tensor:
    """d loss / d params, flattened to one float64 vector (zeros for parameters the loss does not use)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).detach().double().reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine of two flat vectors (0 when either is zero)."""
    den = float(a.norm() * b.norm())
    return float(a.dot(b)) / den if den > 0 else 0.0


class TaskDiagnostics:
    """The record and the probes (see the module docstring)."""

    def __init__(self, every: int, tasks: list[str], seed: int) -> None:
        self.every, self.tasks, self.seed = int(every), list(tasks), int(seed)
        self.last_batch: dict[str, Any] = {}
        self.steps = dict.fromkeys(self.tasks, 0)
        self.lr_sum = dict.fromkeys(self.tasks, 0.0)
        self._since: dict[str, dict[str, list[float]]] = {
            t: {"lr": [], "step_grad": [], "update": []} for t in tasks
        }

    # -- every step --------------------------------------------------------------------------------------
    def remember(self, batch: dict[str, Any]) -> None:
        """Keep each task's latest training batch (what the next probe measures on)."""
        self.last_batch.update(batch)

    def record_step(self, names: list[str], lr: float, step_grad: float, update: float) -> None:
        for name in names:
            self.steps[name] += 1
            self.lr_sum[name] += float(lr)
            since = self._since[name]
            since["lr"].append(float(lr))
            since["step_grad"].append(float(step_grad))
            since["update"].append(float(update))

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    # -- every N steps -----------------------------------------------------------------------------------
    def probe(
        self, model: Any, tasks: dict[str, Any], shared: list[nn.Parameter], device: Any, step: int
    ) -> dict[str, float]:
        """The probe's scalars (keys without the ``diag/`` prefix); resets the since-last-probe means."""
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % (2**63 - 1))
        out: dict[str, float] = {}
        grads: dict[str, Tensor] = {}
        for name in self.tasks:
            batch = self.last_batch.get(name)
            if batch is None:  # not trained on yet (or not since a resume)
                continue
            loss = tasks[name].loss(model, batch, generator, device)
            grads[name] = flat_grad(loss, shared)
            out[f"loss_{name}"] = float(loss.detach())
            out[f"trunk_grad_norm_{name}"] = float(grads[name].norm())
        for a, b in itertools.combinations(grads, 2):
            out[f"cos_{a}_{b}"] = cosine(grads[a], grads[b])
        for name in self.tasks:
            out[f"steps_{name}"] = float(self.steps[name])
            out[f"lr_sum_{name}"] = self.lr_sum[name]
            since = self._since[name]
            if since["lr"]:
                for key, values in since.items():
                    out[f"{key}_mean_{name}"] = sum(values) / len(values)
            self._since[name] = {k: [] for k in since}
        return out

    @staticmethod
    def write(run_dir: Path, step: int, scalars: dict[str, float], writer: Any = None) -> None:
        """TensorBoard ``diag/<key>`` scalars (``writer`` may be None) and one line of ``diagnostics.jsonl``."""
        if writer is not None:
            for k, v in scalars.items():
                writer.add_scalar(f"diag/{k}", v, step)
        with open(Path(run_dir) / DIAGNOSTICS_FILE, "a") as fh:
            fh.write(json.dumps({"step": step, **scalars}) + "\n")

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"steps": dict(self.steps), "lr_sum": dict(self.lr_sum)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.steps.update({k: int(v) for k, v in state.get("steps", {}).items() if k in self.steps})
        self.lr_sum.update({k: float(v) for k, v in state.get("lr_sum", {}).items() if k in self.lr_sum})


def read_diagnostics(run_dir: str | Path) -> list[dict[str, float]]:
    """The probes of a run, in order (a step probed twice, after a resume, keeps its last line)."""
    path = Path(run_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[int(row["step"])] = row
    return [by_step[s] for s in sorted(by_step)]

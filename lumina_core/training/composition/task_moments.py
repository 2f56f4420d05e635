"""``task_moments``: one set of optimiser moments per task on the shared trunk, so each task's AdamW update is
the one it would take alone (apart from the weights the other tasks moved).

Under ``train.mixing: weighted`` a step trains one task, but AdamW keeps *one* running mean of the gradients
(m) and of their squares (v) per trunk weight, fed by every task in turn:

    m <- beta1 m + (1 - beta1) g_t ;  v <- beta2 v + (1 - beta2) g_t^2 ;  w <- w - lr (m^ / (sqrt(v^) + eps) + wd w)

With beta1 = 0.9, m is about the last 10 steps' gradients - on the image / audio / point-cloud recipe 55 % of
them another task's - and v (beta2 = 0.999: about the last 1000 steps) is dominated by the tasks with the
larger trunk gradients (2-5x the image task's there). So the image task's step is mostly the others'
momentum, divided by the others' gradient scale: several times smaller than alone, where m and v are its own.

This method keeps a set ``(m_k, v_k, n_k)`` per task ``k`` for every trunk parameter and, before the optimiser
steps on a step that trains task ``k``, puts task k's set into ``optimizer.state[p]`` (and the previous task's
set aside): the step then reads and updates only task k's moments, and bias-corrects with n_k, the number of
steps of task k so far. With two tasks that alternate, each task's moments are exactly those of an AdamW that
saw only that task's gradients (``tests/core/training/test_composition.py``). A task's own parameters (its
adapter, its head) get gradients only on its own steps, so their one set of moments already is the task's.
The optimiser itself is unchanged (the swap moves the per-parameter state dicts; nothing is copied), and the
learning rate schedule, weight decay and gradient clipping act on every step as before.

Cost: memory for one more copy of the trunk's two moment tensors per task beyond the first (2 x trunk
parameters x 4 bytes each, in float32); no extra time beyond the swap of a few dict entries per step.

State: the sets of the tasks not in the optimiser (``moments``: per task, per trunk parameter index, AdamW's
own tensors) and the task whose set the optimiser holds (``active``); the optimiser's state is saved by the
checkpoint as always, so a resumed run continues bit for bit. Checkpoints hold only tensors, numbers and
strings (loaded with ``weights_only=True``).

Works under ``weighted`` mixing only (under ``all`` a step trains every task at once, and its one update cannot
be any single task's). On several processes (DDP) every rank draws the same task at a step (``draw_task``
depends on the seed and the step only) and keeps identical optimiser state, so every rank swaps alike; under
``train.strategy: fsdp`` the moments are shards that the checkpoint gathers through the optimiser only, so it
is refused there. The swap moves whatever state the optimiser keeps per parameter; it is tested with
``train.optimizer: adamw`` (the 8-bit optimisers page their state and are refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.registry import COMPOSITIONS
from lumina_core.training.composition.base import Composition, fsdp_problems

#: per trunk parameter (by its index in the trunk's trainable parameters): the optimiser's state for it
MomentSet = dict[int, dict[str, Any]]


@COMPOSITIONS.register("task_moments")
class TaskMoments(Composition):
    """Per-task AdamW moments on the shared trunk (see the module docstring)."""

    registered_name = "task_moments"
    mixing = ("weighted",)
    mixing_reason = "under 'all' a step trains every task at once, so its one optimiser update cannot use one task's moments"

    def __init__(self) -> None:
        #: the moment sets of the tasks whose set is not in the optimiser
        self.moments: dict[str, MomentSet] = {}
        #: the task whose set the optimiser holds ("" before the first step)
        self.active = ""
        #: how many trunk parameters the sets are indexed over (None: not known yet / an older checkpoint)
        self.parameters: int | None = None
        self._checked = False

    def before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, tasks: Sequence[str], shared: Sequence[nn.Parameter]
    ) -> None:
        if len(tasks) != 1:
            raise ValueError(
                f"task_moments needs one task per step (train.mixing=weighted); this step trains {list(tasks)}"
            )
        (task,) = tasks
        if not self._checked:
            self._check(shared)
        if task == self.active:
            return
        if self.active:  # set the previous task's moments aside
            self.moments[self.active] = {
                i: optimizer.state.pop(p) for i, p in enumerate(shared) if p in optimizer.state
            }
        for p in shared:  # a task's first step: AdamW starts fresh moments for it
            optimizer.state.pop(p, None)
        for i, st in self.moments.pop(task, {}).items():
            p = shared[i]
            optimizer.state[p] = {k: _like(v, p, k) for k, v in st.items()}
        self.active = task

    def _check(self, shared: Sequence[nn.Parameter]) -> None:
        """The restored sets fit this trunk (a checkpoint of another model size is refused, not misapplied)."""
        if self.parameters is not None and self.parameters != len(shared):
            raise ValueError(
                f"task_moments: the saved moments are indexed over {self.parameters} trunk parameters and this "
                f"trunk has {len(shared)}; resume with the model the run was trained with, or start from its "
                "weights with train.init_from=<checkpoint> (the optimiser starts fresh)"
            )
        self.parameters = len(shared)
        for task, sets in self.moments.items():
            for i, st in sets.items():
                avg = st.get("exp_avg")
                if i >= len(shared) or (isinstance(avg, Tensor) and avg.shape != shared[i].shape):
                    raise ValueError(
                        f"task_moments: the saved moments of task {task!r} do not fit this trunk (parameter {i} of "
                        f"{len(shared)}); resume with the model the run was trained with, or start from its "
                        "weights with train.init_from=<checkpoint> (the optimiser starts fresh)"
                    )
        self._checked = True

    def state_dict(self) -> dict[str, Any]:
        """``{"active": task, "parameters": n, "moments": {task: {"<index>": {state name: tensor}}}}`` (string keys: the
        checkpoint's state file holds only primitives and tensors)."""
        return {
            "active": self.active,
            "parameters": -1 if self.parameters is None else self.parameters,
            "moments": {t: {str(i): dict(st) for i, st in sets.items()} for t, sets in self.moments.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = str(state.get("active", ""))
        n = int(state.get("parameters", -1))
        self.parameters = None if n < 0 else n
        self.moments = {
            t: {int(i): dict(st) for i, st in sets.items()} for t, sets in state.get("moments", {}).items()
        }
        self._checked = False

    def problems(self, mixing: str, tasks: Sequence[str], train: dict[str, Any]) -> list[str]:
        out = super().problems(mixing, tasks, train)
        out += fsdp_problems(
            self.name,
            train,
            "its per-task moments of the sharded trunk would not be gathered into checkpoints",
        )
        optimizer = str(train.get("optimizer", "adamw") or "adamw")
        if optimizer != "adamw":
            out.append(
                f"task_moments needs train.optimizer=adamw (got {optimizer!r}: the 8-bit optimisers page "
                "their state, which the per-task swap does not handle)"
            )
        if len(tasks) < 2:
            out.append(f"task_moments needs at least two tasks to keep apart; the recipe has {len(tasks)}")
        return out


def _like(value: Any, p: Tensor, key: str) -> Any:
    """A restored state tensor on the parameter's device (and, but for AdamW's ``step``, in its dtype), as
    ``Optimizer.load_state_dict`` places the optimiser's own state."""
    if not isinstance(value, Tensor) or key == "step":
        return value
    if value.device == p.device and (not value.is_floating_point() or value.dtype == p.dtype):
        return value
    return value.to(device=p.device, dtype=p.dtype if value.is_floating_point() else value.dtype)

"""The Lightning module: one trunk + per-task adapters, per-task objectives and conditioners, EMA, and one
:class:`~lumina_core.training.task_run.TaskRun` per task (its datasets, data and stream positions, loss tallies).

One training step (manual optimisation, so that skipped steps, exact resume and logging stay in our hands):

    for each task k in the step's batch (train.mixing "all": every task; "weighted": one drawn task):
        loss_k = task_k.loss(model, batch_k, gen)          # see lumina_core.training.task.Task.loss
        run_k.consumed(batch_k)                             # the task's data position moves on
    loss = sum_k loss_weight_k loss_k ; backward ; clip grad norm ; AdamW step ; LR schedule step ; EMA update

``train.composition`` (:mod:`.composition`) may rescale the task losses before the sum (``loss_norm``), compute
the gradients itself (``grad_norm``, ``pcgrad``) or change the optimiser's state before it steps (``task_moments``:
per-task AdamW moments on the trunk); its running state is saved with every checkpoint. ``train.diagnostics_every``
(:mod:`.diagnostics`) logs each task's pull on the shared trunk without changing the run.

All randomness of a step (condition dropout, noise, times) comes from one CPU ``torch.Generator`` seeded by
``run.seed`` and stored in every checkpoint, so a resumed run repeats the uninterrupted one bit for bit.
Data-parallel (``train.devices`` > 1): Lightning's DDP averages the ranks' gradients; rank r reads its own
batches of the one seeded data stream and seeds its generator with ``run.seed + RANK_SEED_STRIDE * r``; every
rank's random state is saved, so a resume on the same number of ranks is bit for bit too.
Sharded (``train.strategy: fsdp``, :mod:`.sharding`): ``configure_model`` shards the trunk block by block and
the EMA with it; checkpoints gather the full weights, EMA and optimiser state so rank 0 writes the same flat
files as an unsharded run.
LR: linear warm-up over ``train.warmup_steps``, then constant or cosine to 0 at ``train.max_steps``.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from lumina_core.errors import LuminaError
from lumina_core.training.build import RunParts, load_trainable, trainable_modules, trainable_state
from lumina_core.training.ema import EMA
from lumina_core.training.task_run import TaskRun, load_runs_state, runs_state

#: rank r > 0 of a distributed run seeds its training generator with ``run.seed + RANK_SEED_STRIDE * r``
RANK_SEED_STRIDE = 1_000_003


class NonFiniteLossError(LuminaError, FloatingPointError):
    """Raised when a training step's loss (or gradient norm) is NaN or infinite (an expected failure: the
    command line prints the message and exits with status 2)."""


def lr_factor(step: int, warmup: int, max_steps: int, schedule: str) -> float:
    """Multiplier of the base LR at optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, max_steps - warmup)
        progress = min(1.0, (step - warmup) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine'; got {schedule!r}")


class LuminaLightningModule(L.LightningModule):
    def __init__(self, cfg: Any, parts: RunParts, run_dir: str | Path) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.model = parts.model
        self.conditioners = nn.ModuleDict(parts.conditioners)
        self.tasks = parts.tasks  # {name: Task}, in recipe order
        self.task_names = list(parts.tasks)
        self.sharded = str(cfg.train.strategy) == "fsdp"
        if self.sharded and cfg.train.lora is not None:
            raise ValueError(
                "train.strategy=fsdp with train.lora is not supported (the adapter is small: use ddp)"
            )
        if self.sharded and cfg.train.compile:
            raise ValueError("train.strategy=fsdp with train.compile=true is not supported yet; use one of them")
        self.ema = EMA(self.trainable_state(), cfg.train.ema_decay)
        self.generator = torch.Generator().manual_seed(int(cfg.run.seed))
        # bookkeeping restored on resume
        self.step = 0  # optimiser steps taken
        #: per task (recipe order): its datasets, data and stream positions, losses since the last log line
        self.runs = {n: TaskRun(t) for n, t in parts.tasks.items()}
        self.draws = 0  # batches of the mixed stream consumed (train.mixing=weighted: task draws made)
        self._totals_since_log: list[float] = []  # the weighted total loss of each step since then
        self.nonfinite_skipped = 0
        self._consecutive_skips = 0
        self.last_checkpoint: Path | None = None
        self._pending_state: dict[str, Any] | None = None
        self._t_last, self._step_last = time.time(), 0
        self._fwd_model = torch.compile(self.model) if cfg.train.compile else self.model
        from lumina_core.training.composition import CompositionChain
        from lumina_core.training.diagnostics import TaskDiagnostics

        self.composition = parts.composition if parts.composition is not None else CompositionChain()
        every = int(getattr(cfg.train, "diagnostics_every", 0) or 0)
        self.diagnostics = TaskDiagnostics(every, self.task_names, int(cfg.run.seed)) if every > 0 else None

    @property
    def data_position(self) -> dict[str, int]:
        """``{task: batches consumed}`` (read from the task runs)."""
        return {n: r.data_position for n, r in self.runs.items()}

    # -- what is checkpointed ---------------------------------------------------------------------------
    def trainable_modules(self) -> dict[str, nn.Module]:
        return trainable_modules(self.model, dict(self.conditioners))

    def trainable_state(self) -> dict[str, Tensor]:
        """Flat ``{prefix.name: tensor}`` of the live parameters and persistent buffers that are saved (with
        ``train.lora``: the adapter's factors only)."""
        return trainable_state(self.trainable_modules(), self.cfg.train.lora is not None)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.trainable_modules().values() for p in m.parameters() if p.requires_grad]

    def load_trainable_state(self, weights: dict[str, Tensor]) -> None:
        load_trainable(self.trainable_modules(), weights, self.cfg.train.lora is not None)

    def configure_model(self) -> None:
        """Lightning's hook once the ranks exist: under ``train.strategy: fsdp`` shard the model (each block,
        then the rest), the trainable conditioners (and frozen ones with ``train.fsdp_shard_encoders``, a recipe
        key still to be added to the schema: until then frozen encoders are replicated) and the EMA with them
        (see :mod:`.sharding`). Nothing to do otherwise."""
        if not self.sharded:
            return
        from lumina_core.training.sharding import is_sharded, shard_run

        if any(is_sharded(p) for p in self.model.parameters()):
            return  # already sharded (configure_model may be called again)
        mesh = self.device_mesh["data_parallel"]
        shard_run(
            self.model, dict(self.conditioners), mesh, str(self.cfg.train.precision),
            bool(getattr(self.cfg.train, "fsdp_shard_encoders", False)),
        )  # fmt: skip
        self.ema.shard_like(self.trainable_state())

    def full_trainable_state(self) -> dict[str, Tensor]:
        """The whole trainable weights on the CPU, as a checkpoint stores them; sharded, every rank must call
        it (the shards are gathered) and ranks > 0 get {}."""
        from lumina_core.training.sharding import gather_full

        return gather_full(self.trainable_state(), keep=int(self.global_rank) == 0)

    def full_ema_state(self) -> dict[str, Tensor]:
        """The whole EMA on the CPU (collective when sharded; ranks > 0 get {})."""
        return self.ema.full_state_dict(keep=int(self.global_rank) == 0)

    @contextmanager
    def ema_weights(self):
        """Run the body with the EMA weights in place (restored exactly afterwards)."""
        with self.ema.swapped_into(self.trainable_state()):
            yield

    # -- state for checkpoints ----------------------------------------------------------------------------
    @property
    def world(self) -> int:
        """Number of data-parallel processes (1 outside a distributed run)."""
        trainer = self._trainer
        return int(trainer.world_size) if trainer is not None else 1

    def open_data(self, preview_items: int) -> None:
        """Build every task's training set and take its preview items (:meth:`TaskRun.open`)."""
        for run in self.runs.values():
            run.open(preview_items)

    def train_dataloader(self) -> Any:
        """The step stream of this rank, built once the ranks are known: each task's loader from where its run
        is (task ``i``'s sampler seeded ``run.seed + i``), mixed by ``train.mixing``."""
        from lumina_core.training.data import MultiTaskBatches

        seed, rank, world = int(self.cfg.run.seed), int(self.global_rank), self.world
        loaders = {n: r.loader(seed + i, rank, world) for i, (n, r) in enumerate(self.runs.items())}
        weights = self.task_draw_weights()  # the recipe's draw_weight, through train.composition
        return MultiTaskBatches(loaders, str(self.cfg.train.mixing), weights, seed, self.draws)

    def rng_state(self) -> dict[str, Any]:
        """This process's random states: the training generator, torch, Python, NumPy (and CUDA)."""
        rng = {
            "train_generator": self.generator.get_state(),
            "torch": torch.get_rng_state(),
            "python": _python_state(random.getstate()),
            "numpy": _numpy_state(np.random.get_state()),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return rng

    def training_state(self) -> dict[str, Any]:
        """Everything besides the weights that an exact resume needs. In a distributed run every rank must
        call it (the ranks' random states are gathered, ``rng_ranks``, and so are the streams' readers); rank 0
        writes it.
        The task runs' states go in as one unit (:func:`~.task_run.runs_state`: ``data_position`` and
        ``stream_positions``, the keys checkpoints have always had)."""
        opt = self.optimizers().optimizer
        sched = self.lr_schedulers()
        if self.sharded:  # gathered whole, keyed by parameter name (rank 0 gets it; collective)
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            opt_state = get_optimizer_state_dict(
                self, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
        else:
            opt_state = opt.state_dict()
        rng = self.rng_state()
        ranks = None
        if self.world > 1:
            ranks = [None] * self.world
            torch.distributed.all_gather_object(ranks, rng)
        runs = runs_state(self.runs)
        state = {
            "step": self.step,
            "data_position": runs["data_position"],
            "draws": self.draws,
            "stream_positions": runs["stream_positions"],
            "nonfinite_skipped": self.nonfinite_skipped,
            "optimizer": opt_state,
            "optimizer_layout": "by_name" if self.sharded else "by_index",
            "scheduler": sched.state_dict(),
            "rng": rng,
            "composition": self.composition.state_dict(),
        }
        if self.diagnostics is not None:
            state["diagnostics"] = self.diagnostics.state_dict()
        if ranks is not None:
            state["rng_ranks"] = ranks
        return state

    def restore(
        self, weights: dict[str, Tensor], ema: dict[str, Tensor] | None, state: dict[str, Any]
    ) -> None:
        """Load weights now; optimiser, schedule and RNG states once the trainer has built the optimiser."""
        self.load_trainable_state(weights)
        self.ema.load_state_dict(ema if ema is not None else weights)
        self.step = int(state["step"])
        load_runs_state(self.runs, state)
        self.draws = int(state.get("draws", self.step))
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        self.composition.load_state_dict(state.get("composition"))
        if self.diagnostics is not None:
            self.diagnostics.load_state_dict(state.get("diagnostics"))
        self._pending_state = state

    def on_train_start(self) -> None:
        self.ema.to(self.device)
        for task in self.tasks.values():
            task.plugin.to(self.device)
        rank, world = int(self.global_rank), self.world
        if rank > 0:  # condition dropout, noise and times differ per rank, reproducibly
            self.generator.manual_seed(int(self.cfg.run.seed) + RANK_SEED_STRIDE * rank)
        st = self._pending_state
        if st is not None:
            self._load_optimizer_state(st)
            self.lr_schedulers().load_state_dict(st["scheduler"])
            saved = st.get("rng_ranks") or [st["rng"]]
            if len(saved) != world:
                self.print(
                    f"resuming a run saved on {len(saved)} rank(s) on {world}: it continues, but not bit for bit "
                    "(each rank's random state and data slice change with the number of ranks)"
                )
            if rank < len(saved):
                self._set_rng_state(saved[rank])
            self._pending_state = None
        self._t_last, self._step_last = time.time(), self.step

    def _load_optimizer_state(self, st: dict[str, Any]) -> None:
        """The optimiser state of a checkpoint: by parameter index (unsharded runs) or by name, whole
        (``train.strategy: fsdp``; every rank cuts out its own shard)."""
        opt = self.optimizers().optimizer
        layout = st.get("optimizer_layout", "by_index")
        want = "by_name" if self.sharded else "by_index"
        if layout != want:
            saved, now = ("fsdp", "ddp/single") if layout == "by_name" else ("ddp/single", "fsdp")
            raise ValueError(
                f"this checkpoint's optimiser state was written by a {saved} run and this run uses {now}: resume "
                f"with the strategy the run was trained with (train.strategy), or start from its weights with "
                f"train.init_from=<checkpoint> (the optimiser starts fresh)"
            )
        if not self.sharded:
            saved_groups = [g.get("name", "all") for g in st["optimizer"]["param_groups"]]
            now_groups = [g.get("name", "all") for g in opt.param_groups]
            if saved_groups != now_groups:  # train.lora.lr / lr_ratio changed since the checkpoint
                raise ValueError(
                    f"this checkpoint's optimiser has the parameter groups {saved_groups} and this run's has "
                    f"{now_groups}: train.lora.lr or train.lora.lr_ratio differ from the run's (a run from before "
                    "these settings trained with one rate: resume it with train.lora.lr_ratio=1 "
                    "train.lora.lr=null), or start from its weights with train.init_from (the optimiser starts fresh)"
                )
            opt.load_state_dict(st["optimizer"])
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        # strict=False: a parameter that never had a gradient (an unused pad token, a task not drawn yet) has
        # no AdamW state, in the checkpoint as in the uninterrupted run
        set_optimizer_state_dict(
            self, opt, st["optimizer"], options=StateDictOptions(full_state_dict=True, strict=False)
        )

    def _set_rng_state(self, rng: dict[str, Any]) -> None:
        self.generator.set_state(rng["train_generator"])
        torch.set_rng_state(rng["torch"])
        random.setstate(_python_state_back(rng["python"]))
        np.random.set_state(_numpy_state_back(rng["numpy"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # -- optimisation ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        from lumina_core.finetune.optim import build_optimizer

        tc = self.cfg.train
        params: Any = self.trainable_parameters()
        if tc.lora is not None:  # the factors at train.lora.lr, B at lr_ratio times that (LoRA+)
            from lumina_core.finetune.optim import lora_param_groups

            named = {f"{m}.{n}": p for m, mod in self.trainable_modules().items()
                     for n, p in mod.named_parameters() if p.requires_grad}  # fmt: skip
            params = lora_param_groups(named, tc.lr, getattr(tc.lora, "lr", None), getattr(tc.lora, "lr_ratio", 1.0))
        opt = build_optimizer(  # train.optimizer: adamw | adamw8bit | paged_adamw8bit (bitsandbytes, CUDA)
            str(getattr(tc, "optimizer", "adamw")), params, tc.lr, tc.betas, tc.weight_decay,
            str(self.cfg.run.device),
        )  # fmt: skip
        warm, total, kind = int(tc.warmup_steps), int(tc.max_steps), str(tc.lr_schedule)
        lr_factor(0, warm, total, kind)  # validates the schedule name up front
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warm, total, kind))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def task_draw_weights(self) -> dict[str, float]:
        """Each task's draw weight under ``weighted`` mixing: the recipe's ``draw_weight``, through
        ``train.composition`` (temperature draws use the training sets' sizes)."""
        weights = {n: t.draw_weight for n, t in self.tasks.items()}
        sizes = {n: r.size() for n, r in self.runs.items()}
        return self.composition.draw_weights(weights, sizes)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of the shared trunk (what every task's gradient lands on)."""
        return [p for p in self.model.trunk.parameters() if p.requires_grad]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt = self.optimizers()
        sched = self.lr_schedulers()
        losses = {}
        task_losses = {}
        total = None
        self.draws += 1
        for name, task_batch in batch.items():
            task = self.tasks[name]
            loss = task.loss(self._fwd_model, task_batch, self.generator, self.device)
            self.runs[name].consumed(task_batch)
            losses[name] = loss.detach()
            task_losses[name] = loss
            total = task.loss_weight * loss if total is None else total + task.loss_weight * loss
        if self.diagnostics is not None:
            self.diagnostics.remember(batch)
        if not bool(torch.isfinite(total)):
            return self._nonfinite(f"loss {total.item()}", losses)
        weighted = None
        if self.composition.methods:  # rescaled task losses (loss_norm), summed again
            scaled = self.composition.scale_losses(task_losses, self._rank_mean(losses))
            weighted = {n: self.tasks[n].loss_weight * v for n, v in scaled.items()}
            total = sum(weighted.values())
        opt.zero_grad(set_to_none=True)
        params = self.trainable_parameters()
        if self.composition.gradient_method is not None:  # grad_norm, pcgrad: per-task gradients
            self.composition.gradient_method.backward(weighted, self.shared_parameters(), params)
        else:
            self.manual_backward(total)
        step_grad = before = None
        if self.diagnostics is not None:
            shared = self.shared_parameters()
            step_grad = float(torch.stack([p.grad.detach().double().norm() for p in shared if p.grad is not None]).norm())
            before = torch.cat([p.detach().reshape(-1) for p in shared]).clone()
        clip = float(self.cfg.train.grad_clip)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        if self.sharded:
            from lumina_core.training.sharding import full_tensor

            grad_norm = full_tensor(grad_norm)  # the norm over every rank's shards
        if not bool(torch.isfinite(grad_norm)):
            opt.zero_grad(set_to_none=True)
            return self._nonfinite(f"gradient norm {grad_norm.item()}", losses)
        lr = sched.get_last_lr()[0]  # the rate this step used
        self.composition.before_optimizer_step(opt.optimizer, list(batch), self.shared_parameters())
        opt.step()
        sched.step()
        self.ema.update(self.trainable_state(), self.step)
        self.step += 1
        self._consecutive_skips = 0
        if self.diagnostics is not None:
            after = torch.cat([p.detach().reshape(-1) for p in self.shared_parameters()])
            self.diagnostics.record_step(list(batch), lr, step_grad, float((after - before).double().norm()))
            self._probe()
        for name, loss in losses.items():
            self.runs[name].record_loss(loss.item(), self.draws)
        self._totals_since_log.append(total.item())
        self._log_step(grad_norm.detach(), lr)

    def _rank_mean(self, losses: dict[str, Tensor]) -> dict[str, float]:
        """Each task loss's value averaged over the ranks (one all-reduce in a distributed run), so every
        rank updates a composition method's running statistics alike."""
        if self.world == 1 or not torch.distributed.is_initialized():
            return {k: float(v) for k, v in losses.items()}
        names = sorted(losses)
        values = torch.stack([losses[k].float() for k in names])
        torch.distributed.all_reduce(values)
        return {k: float(v) / self.world for k, v in zip(names, values, strict=True)}

    def _probe(self) -> None:
        """``train.diagnostics_every``: the per-task probe of :mod:`.diagnostics`, written by rank 0."""
        if not self.diagnostics.due(self.step):
            return
        scalars = self.diagnostics.probe(self.model, self.tasks, self.shared_parameters(), self.device, self.step)
        if int(self.global_rank) == 0:
            self.diagnostics.write(self.run_dir, self.step, scalars, self.tb_writer())

    def _nonfinite(self, what: str, losses: dict[str, Tensor]) -> None:
        """Skip a step whose loss or gradient is not finite (``train.skip_nonfinite``), up to
        ``train.max_consecutive_skips`` in a row and ``train.max_skipped_steps`` in all; otherwise stop
        with :class:`NonFiniteLossError`. (Weights that have become non-finite make every later step
        non-finite too: without the bounds a run would skip for ever.)"""
        tc = self.cfg.train
        per_task = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        last = str(self.last_checkpoint) if self.last_checkpoint else "none (no checkpoint written yet)"
        if tc.skip_nonfinite:
            self.nonfinite_skipped += 1
            self._consecutive_skips += 1
            in_a_row, total = self._consecutive_skips, self.nonfinite_skipped
            if in_a_row <= int(tc.max_consecutive_skips) and total <= int(tc.max_skipped_steps):
                self.print(f"step {self.step + 1}: non-finite {what} ({per_task}); skipped ({total} so far)")
                return None
            bound = (
                f"{in_a_row} steps in a row (train.max_consecutive_skips={tc.max_consecutive_skips})"
                if in_a_row > int(tc.max_consecutive_skips)
                else f"{total} steps in all (train.max_skipped_steps={tc.max_skipped_steps})"
            )
            raise NonFiniteLossError(
                f"non-finite {what} at step {self.step + 1} (task losses: {per_task}) after skipping {bound}: "
                f"the run is not recovering. Last good checkpoint: {last}. Resume from it with a lower "
                "train.lr (or a smaller train.grad_clip)."
            )
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} (task losses: {per_task}); last good checkpoint: "
            f"{last}. Resume from it with a lower train.lr, or set train.skip_nonfinite=true to skip such steps."
        )

    # -- logging -------------------------------------------------------------------------------------------
    def _log_step(self, grad_norm: Tensor, lr: float) -> None:
        """Every ``train.log_every`` steps: a console line and TensorBoard scalars. The loss is the mean of
        the steps' weighted totals since the last line; per-task losses are the mean over the steps since the
        last line that ran the task (with ``weighted`` mixing not every task runs every step; the line says
        how many steps each task ran). Gradient norm and learning rate are this step's."""
        tc = self.cfg.train
        every = max(1, int(tc.log_every))
        if self.step % every and self.step != int(tc.max_steps):
            return
        logged = sorted((r for r in self.runs.values() if r.losses), key=lambda r: r.first_loss_at)
        ran = {r.name: r.take_losses() for r in logged}  # in the order the tasks ran since the last line
        total = sum(self._totals_since_log) / max(len(self._totals_since_log), 1)
        self._totals_since_log = []
        scalars = {"train/loss": total, "train/grad_norm": grad_norm.item(), "train/lr": lr}
        scalars.update({f"train/loss_{k}": mean for k, (mean, _) in ran.items()})
        if self.nonfinite_skipped:
            scalars["train/nonfinite_skipped"] = self.nonfinite_skipped
        skips = self.skipped_samples()
        scalars.update({f"data/skipped_{k}": v["skipped"] for k, v in skips.items()})
        writer = self.tb_writer()
        if writer is not None:
            for k, v in scalars.items():
                writer.add_scalar(k, v, self.step)
        now = time.time()
        rate = (self.step - self._step_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._step_last = now, self.step
        weighted = str(tc.mixing) == "weighted"
        per_task = " ".join(
            f"{k}={mean:.4f}" + (f" x{count}" if weighted else "") for k, (mean, count) in ran.items()
        )
        skipped = "".join(
            f"  skipped {k}: {v['skipped']} unreadable" for k, v in skips.items() if v["skipped"]
        )
        if self.nonfinite_skipped:
            skipped += f"  non-finite steps skipped: {self.nonfinite_skipped}"
        self.print(
            f"step {self.step}/{tc.max_steps}  loss {total:.4f} ({per_task})  "
            f"grad {grad_norm.item():.3g}  lr {lr:.3g}  {rate:.2f} it/s"
            f"{self._eta(rate)}{skipped}"
        )

    def _eta(self, rate: float) -> str:
        from lumina_core.progress import format_duration

        left = int(self.cfg.train.max_steps) - self.step
        return f"  {format_duration(left / rate)} left" if rate > 0 and left > 0 else ""

    def skipped_samples(self) -> dict[str, dict[str, Any]]:
        """``{task: {"seen", "skipped", "names"}}`` for the tasks whose dataset skips unreadable samples."""
        out = {}
        for name, run in self.runs.items():
            report = run.skip_report()
            if report is not None:
                out[name] = report
        return out

    def tb_writer(self):
        logger = self.logger
        return getattr(logger, "experiment", None) if logger is not None else None


# -- RNG states as tensors and primitives (loadable with weights_only=True) ---------------------------------
def _python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_back(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def _numpy_state(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _numpy_state_back(state: list) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)

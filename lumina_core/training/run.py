"""Training a run: ``train``, with the run folder's lock, resume, recipe changes, preemption and lost ranks.

    run_dir = train(cfg)                      # cfg: a recipe (OmegaConf DictConfig following config/schema.py)
    run_dir = train(cfg, resume="last")       # continue exactly where the last checkpoint left off

A run directory holds ``config.yaml``, ``checkpoints/`` (see :mod:`.checkpoint`), ``tb/`` (TensorBoard),
``previews/`` and ``metrics.json``; ``.lumina-lock``, the lock a run holds on it while it runs
(:mod:`.runlock`); and ``config.before-<checkpoint>.yaml`` for each resume that changed the training keys
(:mod:`.recipe_changes`). Each task's state in the run (datasets, positions, loss tallies) is its
:class:`~.task_run.TaskRun`, held by the Lightning module (:mod:`.module`).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from lumina_core.config.devices import require_device
from lumina_core.config.schema import STRATEGIES
from lumina_core.config.typed import recipe_node, typed_recipe
from lumina_core.errors import LuminaError
from lumina_core.safe_write import DiskFull, disk_full, is_out_of_space, write_atomic
from lumina_core.training.build import build_run
from lumina_core.training.ranks import (
    RankLost,
    claim_report,
    close_process_group,
    dead_ranks,
    exit_status_text,
    is_lost_peer,
    launch_rank,
    resume_command,
)
from lumina_core.training.runlock import LockHolder, RunLock
from lumina_core.training.weights import describe_mismatch, prepare_weights

__all__ = [
    "PREVIEW_ITEMS",
    "RecipeChangedError",
    "RunExistsError",
    "check_recipe_changes",
    "rank_lost_text",
    "train",
]

#: how many held-out items per task the preview callback renders
PREVIEW_ITEMS = 4


class _DropLightningTips(logging.Filter):
    """Keep Lightning's console output to what matters for a run (no advertising tips)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _trainer_device(device: str, devices: int = 1, num_nodes: int = 1, strategy: str = "auto") -> dict[str, Any]:
    """Lightning Trainer arguments for ``run.device`` and ``train.devices / num_nodes / strategy``."""
    distributed = int(devices) > 1 or int(num_nodes) > 1 or strategy != "auto"
    if device == "auto":
        out: dict[str, Any] = {"accelerator": "auto", "devices": int(devices) if distributed else 1}
    elif device == "cpu":
        out = {"accelerator": "cpu", "devices": int(devices)}
    elif device == "mps":  # Apple's GPU (Lightning's MPSAccelerator): one device
        out = {"accelerator": "mps", "devices": 1}
    elif device.startswith("cuda"):
        if distributed:
            out = {"accelerator": "gpu", "devices": int(devices)}
        else:
            index = int(device.split(":")[1]) if ":" in device else 0
            out = {"accelerator": "gpu", "devices": [index]}
    else:
        raise ValueError(f"run.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}")
    if distributed:
        if strategy not in STRATEGIES:
            raise ValueError(f"train.strategy must be one of {STRATEGIES}; got {strategy!r}")
        out["num_nodes"] = int(num_nodes)
        # a step leaves parameters unused (the adapters of tasks not drawn, a pad token with no padding), so DDP
        # must look for them
        if strategy == "fsdp":  # torch's FSDP2 through Lightning's ModelParallelStrategy (GPUs, or gloo on CPU)
            from lumina_core.training.sharding import fsdp_strategy

            out["strategy"] = fsdp_strategy(int(devices), int(num_nodes))
        else:
            out["strategy"] = "ddp_find_unused_parameters_true"
    return out


def train(cfg: Any, resume: str | None = None, overwrite: bool = False, allow_changes: bool = False) -> Path:
    """Train the recipe ``cfg``; return the run directory. ``resume``: a checkpoint (or run) directory, or
    ``"last"`` for the newest checkpoint of this run's directory. Everything is restored: weights, EMA,
    optimiser, LR schedule, step, RNG states and each task's data position.

    A run directory that already holds checkpoints is never overwritten silently: without ``resume`` it is
    refused (:class:`RunExistsError`) unless ``overwrite``, which moves the earlier run aside (renamed
    ``<name>.old-<time>``, never deleted). SIGTERM stops the run after the current step with a checkpoint
    and raises :class:`lumina_core.errors.Preempted`.

    The run holds a lock on its folder from before it reads or writes anything there until it ends
    (:mod:`.runlock`): a second run into a folder in use is refused with
    :class:`~.runlock.RunFolderLocked`, naming the process that holds it."""
    import torch

    cfg = typed_recipe(cfg)
    tc = cfg.train
    require_device(str(cfg.run.device), int(tc.devices))  # before the run folder is touched
    if resume is not None and overwrite:
        raise ValueError("--resume continues a run and --overwrite starts it again: give one of them")
    if allow_changes and resume is None:
        raise ValueError("--allow-changes is for --resume: a new run has no earlier recipe to differ from")
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    run_dir = Path(cfg.run.output_dir)
    # one writer per run folder, from before anything there is read or written until the run ends; the other
    # ranks of a data-parallel run are rank 0's helpers, not second writers
    lock = RunLock(run_dir) if launch_rank() == 0 else None
    if lock is not None:
        _say_taken_over(lock.acquire(), run_dir)
    try:
        return _train_in(run_dir, lock, cfg, resume, overwrite, allow_changes)
    finally:
        if lock is not None:
            lock.release()


def _say_taken_over(left_behind: LockHolder | None, run_dir: Path) -> None:
    if left_behind is not None:
        print(
            f"note: {run_dir} was locked by a run that ended without releasing it ({left_behind.describe()}); "
            "that process is gone, so this run takes the folder over"
        )


def _train_in(
    run_dir: Path, lock: RunLock | None, cfg: Any, resume: str | None, overwrite: bool, allow_changes: bool
) -> Path:
    """:func:`train`'s work, with the run folder's lock held (``lock``; None on ranks other than 0)."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.callbacks import CheckpointEvery, PreviewSamples, SayWhichRankDied, StepProgress
    from lumina_core.training.curves import LossCurves
    from lumina_core.training.module import LuminaLightningModule

    tc = cfg.train
    ckpt_root = run_dir / "checkpoints"
    if resume is None and _has_checkpoints(ckpt_root):
        if not overwrite:
            raise RunExistsError(
                f"{run_dir} already holds checkpoints of an earlier run ({_newest(ckpt_root)}). Continue it "
                "with --resume last, start again with --overwrite (the earlier run is moved aside, not "
                "deleted), or choose another folder with run.output_dir=... (or run.name=...)"
            )
        print(f"--overwrite: the earlier run was moved to {_move_aside(run_dir)}")
        if lock is not None:  # the lock file went aside with the old run: lock the new folder
            lock.release()
            _say_taken_over(lock.acquire(), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.clean_temporaries(ckpt_root)

    L.seed_everything(int(cfg.run.seed), verbose=False)
    parts = build_run(cfg)
    if resume is None and launch_rank() == 0:
        from lumina_core.training.composition.shared_start import unshared_note

        objectives = {n: str(t.config.objective.name) for n, t in parts.tasks.items()}
        note = unshared_note(parts.model, objectives, parts.composition.names)
        if note:
            print(note)
    prepare_weights(parts, cfg)
    module = LuminaLightningModule(cfg, parts, run_dir)
    if resume is not None:
        ck = ckpt_io.resolve_checkpoint(resume, run_dir)
        ema = ckpt_io.load_weights(ck, "ema") if (ck / ckpt_io.EMA_FILE).is_file() else None
        weights, state = ckpt_io.load_weights(ck, "model"), ckpt_io.load_state(ck)
        expected = module.trainable_state()
        try:
            module.restore(weights, ema, state)
        except (RuntimeError, ValueError) as exc:
            raise ckpt_io.CheckpointError(describe_mismatch(ck, cfg, expected, weights, exc)) from exc
        module.last_checkpoint = ck
        changed = check_recipe_changes(ck, cfg, allow_changes)
        if launch_rank() == 0:
            print(f"resuming from {ck} at step {module.step}")
            if changed:
                print("the recipe changed since that checkpoint: " + "; ".join(str(c) for c in changed))
    if launch_rank() == 0:
        keep_as = f"config.before-{ck.name}.yaml" if resume is not None else None
        kept = _save_recipe(cfg, run_dir / "config.yaml", keep_as=keep_as)
        if kept is not None:
            print(f"the earlier config.yaml (the recipe of the steps before) is kept as {kept}")

    remaining = int(tc.max_steps) - module.step
    if remaining <= 0:
        print(f"nothing to do: step {module.step} >= train.max_steps={tc.max_steps}")
        return run_dir

    module.open_data(PREVIEW_ITEMS)  # each task run's training set and preview items

    tips = _DropLightningTips()
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_log.addFilter(tips)
    finished, trainer = False, None
    try:
        trainer = L.Trainer(
            **_trainer_device(str(cfg.run.device), int(tc.devices), int(tc.num_nodes), str(tc.strategy)),
            precision=str(tc.precision),
            max_steps=remaining,
            max_epochs=-1,
            logger=TensorBoardLogger(str(run_dir), name="tb", version=""),
            callbacks=[
                CheckpointEvery(ckpt_root, int(tc.ckpt_every)),
                PreviewSamples(run_dir / "previews", int(tc.preview_every), PREVIEW_ITEMS),
                LossCurves(run_dir),  # curves/loss.png: the loss per task, beside TensorBoard
                SayWhichRankDied(lambda dead: rank_lost_text(module, dead, ckpt_root, None)),
                StepProgress(),
            ],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            use_distributed_sampler=False,
            default_root_dir=str(run_dir),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
            # Lightning's own use of a deprecated torch pytree API; nothing a user can act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            trainer.fit(module)
        finished = True
    except SIGTERMException as exc:  # Lightning stops after the step; CheckpointEvery saved it
        raise _preempted(module, ckpt_root) from exc
    except Exception as exc:  # a lost rank, or a full disk under a preview, a curve or a log: one paragraph
        if module.world > 1 and is_lost_peer(exc):
            if getattr(trainer, "received_sigterm", False):  # the whole job was stopped; a peer just went first
                raise _preempted(module, ckpt_root) from exc
            raise _rank_lost(module, trainer, ckpt_root, exc) from exc
        if isinstance(exc, DiskFull) or not is_out_of_space(exc):
            raise
        raise disk_full(
            getattr(exc, "filename", None) or run_dir, None, f"a file of the run, after step {module.step}",
            f"Training stopped; the newest checkpoint is {module.last_checkpoint}. Free some space, then "
            "continue with `lumina train RECIPE --resume last`.",
        ) from exc  # fmt: skip
    finally:
        lightning_log.removeFilter(tips)
        if launch_rank() == 0:
            try:
                _write_data_report(run_dir, module)
            except DiskFull as exc:  # the earlier report is left whole; the run's own error (if any) comes first
                if finished:
                    raise
                print(f"note: {exc}", file=sys.stderr)
        close_process_group(synchronise=finished)  # every rank, before the interpreter exits (see ranks.py)
    if launch_rank() != 0:
        return run_dir
    if module.nonfinite_skipped:
        print(f"{module.nonfinite_skipped} step(s) with a non-finite loss were skipped")
    return run_dir


def _preempted(module: Any, ckpt_root: Path) -> Exception:
    from lumina_core.errors import Preempted

    return Preempted(
        f"stopped by SIGTERM after step {module.step}; {_newest_checkpoint(module, ckpt_root)}. Continue "
        f"with `{resume_command()}` (exit status 143, so a scheduler does not count the job as done)"
    )


def _newest_checkpoint(module: Any, ckpt_root: Path) -> str:
    """Where ``--resume last`` will continue from, in words (every rank knows it: rank 0 wrote it)."""
    ck = module.last_checkpoint
    if ck is None and (ckpt_root / "last").is_file():
        ck = ckpt_root / (ckpt_root / "last").read_text().strip()
    if ck is None:
        return "no checkpoint was written yet, so the steps so far are lost"
    return f"the newest checkpoint is {ck}"


def _rank_lost(module: Any, trainer: Any, ckpt_root: Path, exc: BaseException) -> RankLost:
    """The one paragraph for a collective that failed because another rank died (see :mod:`.ranks`)."""
    launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
    dead = dead_ranks(launcher) if module.global_rank == 0 else []
    if not claim_report():  # the launcher's watcher is saying it and ends this process: let it, say nothing
        import time

        time.sleep(30)
    return RankLost(rank_lost_text(module, dead, ckpt_root, exc))


def rank_lost_text(module: Any, dead: list[tuple[int, int]], ckpt_root: Path, exc: BaseException | None) -> str:
    """Which rank died (``dead``: rank and exit status, where known), at which step, the newest checkpoint and
    the command that continues the run."""
    world = module.world
    if dead:
        who = "; ".join(f"rank {r} of {world} died ({exit_status_text(code)})" for r, code in dead)
    elif module.global_rank != 0:
        who = f"rank {module.global_rank} of {world} lost its connection to the other ranks (rank 0 ended?)"
    else:
        who = f"another rank of the {world} ended (see its own log: torchrun or the scheduler started it)"
    why = f" ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]})" if exc is not None else ""
    newest = _newest_checkpoint(module, ckpt_root)
    return (
        f"{who} during step {module.step + 1}, so this data-parallel run cannot go on: every rank takes part in "
        f"every step{why}. {newest[0].upper()}{newest[1:]}; the steps after it are lost. Continue with "
        f"`{resume_command()}`"
    )


def _save_recipe(recipe: Any, path: Path, keep_as: str | None = None) -> Path | None:
    """Write ``recipe`` to ``path``. ``keep_as``: if ``path`` holds a recipe that trains differently (a resume
    with ``--allow-changes``; not a mere change of ``train.max_steps``, see
    :data:`.recipe_changes.BOOKKEEPING`), rename it to this name beside it first (``-2``, ``-3``, ... if
    taken) and return its new path."""
    from omegaconf import OmegaConf

    from lumina_core.training.recipe_changes import changes

    kept = None
    if keep_as is not None and path.is_file():
        try:
            earlier: Any = typed_recipe(OmegaConf.load(path))
        except Exception:  # noqa: BLE001 - unreadable or no longer fits the schema: keep it, whatever it is
            earlier = None
        if earlier is None or any(c.breaks_exact_resume for c in changes(earlier, recipe)):
            kept = _free_name(path.with_name(keep_as))
            path.rename(kept)
    write_atomic(path, OmegaConf.to_yaml(recipe_node(recipe)), "the run's recipe")
    return kept


def _free_name(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class RecipeChangedError(LuminaError):
    """``--resume`` with a recipe whose training keys differ from the checkpoint's, without ``--allow-changes``."""


def check_recipe_changes(ck: Path, cfg: Any, allow_changes: bool) -> list[Any]:
    """The keys in which ``cfg`` differs from the recipe checkpoint ``ck`` was trained with (see
    :mod:`.recipe_changes`); raises :class:`RecipeChangedError` if one of them changes the training steps
    and ``allow_changes`` is false. A checkpoint that records no recipe is not compared (with a warning)."""
    from lumina_core.training.recipe_changes import changes, recorded_recipe

    recorded = recorded_recipe(ck)
    if recorded is None:
        warnings.warn(
            f"{ck} records no recipe (no meta.json recipe, no config.yaml in its run folder): the recipe "
            "cannot be compared with the one it was trained with",
            stacklevel=2,
        )
        return []
    earlier, source = recorded
    changed = changes(earlier, cfg)
    breaking = [c for c in changed if c.breaks_exact_resume]
    if breaking and not allow_changes:
        raise RecipeChangedError(
            f"--resume {ck}: the recipe differs from the one that checkpoint was trained with ({source}) in "
            f"{len(breaking)} key(s) that change the training steps: " + "; ".join(str(c) for c in breaking)
            + ". The resumed run would not be the run that stopped. Resume with the earlier values, start a "
            "new run in another folder (run.name=...), or pass --allow-changes to continue with the new "
            "values anyway (the earlier config.yaml is kept beside the new one)"
        )
    return changed


class RunExistsError(FileExistsError):
    """``lumina train`` without ``--resume`` in a run folder that already holds checkpoints."""


def _has_checkpoints(root: Path) -> bool:
    return root.is_dir() and any(p.name.startswith("step_") or p.name == "last" for p in root.iterdir())


def _newest(root: Path) -> str:
    steps = sorted(p.name for p in root.iterdir() if p.name.startswith("step_"))
    return steps[-1] if steps else "an incomplete checkpoint"


def _move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to ``<name>.old-<time>`` (a free name) and return it; nothing is deleted."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    run_dir.rename(target)
    return target


def _write_data_report(run_dir: Path, module: Any) -> None:
    """``<run_dir>/data_report.json``: per task, samples seen and unreadable samples skipped (with names);
    written whole or not at all (a full disk leaves the earlier report as it was)."""
    report = module.skipped_samples()
    if not report:
        return
    write_atomic(run_dir / "data_report.json", json.dumps(report, indent=2) + "\n", "the data report")
    for name, r in report.items():
        if r["skipped"]:
            print(f"task {name}: skipped {r['skipped']} unreadable sample(s); see {run_dir / 'data_report.json'}")

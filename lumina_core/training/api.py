"""The training API: ``train``, ``sample``, ``evaluate`` and ``load_run``.

    from lumina_core.training.api import train, sample, evaluate, load_run
    run_dir = train(cfg)                      # cfg: a recipe (OmegaConf DictConfig following config/schema.py)
    run_dir = train(cfg, resume="last")       # continue exactly where the last checkpoint left off
    paths   = sample(cfg, "last", ["a red circle"], num=4, out_dir="out/")
    metrics = evaluate(cfg, None)             # generate for held-out items, plugin.evaluate, metrics.json

A run directory holds ``config.yaml``, ``checkpoints/`` (see :mod:`.checkpoint`), ``tb/`` (TensorBoard),
``previews/`` and ``metrics.json``; ``.lumina-lock``, the lock a run holds on it while it runs
(:mod:`.runlock`); and ``config.before-<checkpoint>.yaml`` for each resume that changed the training keys
(:mod:`.recipe_changes`).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from lumina_core.config.devices import require_device
from lumina_core.config.schema import STRATEGIES
from lumina_core.config.typed import as_dict, recipe_node, typed_recipe
from lumina_core.errors import LuminaError
from lumina_core.safe_write import DiskFull, disk_full, is_out_of_space, write_atomic
from lumina_core.training.build import RunParts, build_run, load_trainable, resolve_device, trainable_modules
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

    from lumina_core.data.stream import first_items, is_stream, stream_loader
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.callbacks import CheckpointEvery, PreviewSamples, SayWhichRankDied, StepProgress
    from lumina_core.training.curves import LossCurves
    from lumina_core.training.data import MultiTaskBatches, task_loader
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

    val_items: dict[str, list[dict]] = {}
    for name, task in parts.tasks.items():
        module.datasets[name] = task.dataset("train", check_condition_kind=True)
        # a classifier generates nothing, so it has no previews
        val_items[name] = first_items(task.dataset("val"), PREVIEW_ITEMS) if task.generative else []

    def loader(i: int, name: str, task: Any, rank: int, world: int) -> Any:
        ds, workers = module.datasets[name], int(task.config.data.num_workers)
        if is_stream(ds):  # webdataset shards: the stream resumes from the readers' saved positions
            return stream_loader(ds, task.batch_size, workers, state=module.stream_positions[name].state_dict() or None)
        return task_loader(
            ds, task.batch_size, workers, int(cfg.run.seed) + i, module.data_position[name], rank, world
        )

    def make_batches(rank: int, world: int) -> MultiTaskBatches:
        """The step stream of rank ``rank`` of ``world`` (called by the module once the ranks are known)."""
        loaders = {name: loader(i, name, task, rank, world) for i, (name, task) in enumerate(parts.tasks.items())}
        weights = module.task_draw_weights()  # the recipe's draw_weight, through train.composition
        return MultiTaskBatches(loaders, str(tc.mixing), weights, int(cfg.run.seed), module.draws)

    module.make_batches = make_batches

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
                PreviewSamples(run_dir / "previews", int(tc.preview_every), val_items, PREVIEW_ITEMS),
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


def describe_mismatch(
    ck: Path, cfg: Any, expected: dict[str, Any], weights: dict[str, Any], exc: Exception
) -> str:
    """Why a checkpoint's weights do not fit the recipe's model: missing and unexpected keys, shapes that
    differ, and the recipe values that differ from the ones the checkpoint was trained with."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} -> {tuple(expected[k].shape)}"
        for k in set(expected) & set(weights)
        if tuple(weights[k].shape) != tuple(expected[k].shape)
    )
    lines = [f"the checkpoint {ck} does not fit the model this recipe builds"]
    for what, keys in (
        ("missing from the checkpoint", missing),
        ("in the checkpoint but not in the model", unexpected),
        ("shapes that differ (checkpoint -> model)", shapes),
    ):
        if keys:
            lines.append(f"{what} ({len(keys)}): {', '.join(keys[:6])}" + (", ..." if len(keys) > 6 else ""))
    if not (missing or unexpected or shapes):
        lines.append(str(exc).splitlines()[0])
    meta_file = ck / "meta.json"
    trained: dict[str, Any] = {}
    if meta_file.is_file():
        try:
            trained = json.loads(meta_file.read_text()).get("model") or {}
        except ValueError:
            trained = {}
    if trained:
        now = as_dict(typed_recipe(cfg).model)
        diffs = [
            f"model.{k} is {trained.get(k)!r} in the checkpoint and {now.get(k)!r} in the recipe"
            for k in sorted(set(trained) | set(now))
            if trained.get(k) != now.get(k)
        ]
        if diffs:
            lines.append("recipe values that differ: " + "; ".join(diffs))
    return ". ".join(lines) + ". Resume with the recipe the run was trained with, or start a new run."


def load_run(
    cfg: Any, checkpoint: str | Path | None = None, weights: str = "ema", device: str | None = None
) -> RunParts:
    """A trained run's :class:`RunParts` (the model and its tasks), in eval mode on ``device``.

    ``checkpoint``: a checkpoint or run directory, None / ``"last"`` for the run's newest checkpoint, or a
    converted checkpoint (``lumina convert`` of released or diffusers weights; its image task is loaded as
    the recipe's, see :func:`lumina_core.interop.formats.converted_state_dict`);
    ``weights``: ``"ema"`` (default, what previews and evaluation use) or ``"model"`` (raw weights).
    """
    from lumina_core.training import checkpoint as ckpt_io

    cfg = typed_recipe(cfg)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model'; got {weights!r}")
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    parts = build_run(cfg)
    lora = cfg.train.lora is not None
    if lora and not cfg.train.init_from and not ckpt_io.is_converted(ck):
        from lumina_core.finetune.runs import missing_base_message

        raise ckpt_io.CheckpointError(missing_base_message(ck))
    if lora:
        prepare_weights(parts, cfg)  # the frozen base the adapter was trained on, then the adapter
    load_weights(parts, cfg, ck, weights, lora=lora)
    if lora:
        from lumina_core.finetune.lora import merge_lora

        merge_lora(parts.model)  # sample on the trunk's fast route
    dev = device or resolve_device(str(cfg.run.device))
    parts.model.to(dev).eval()
    for task in parts.tasks.values():
        task.conditioner.to(dev).eval()
        task.plugin.to(dev)
    parts.checkpoint = ck
    return parts


def load_weights(parts: RunParts, cfg: Any, ck: Path, weights: str = "ema", lora: bool = False) -> None:
    """Load checkpoint ``ck`` (a run's checkpoint folder or a converted checkpoint) into ``parts``: the EMA
    weights when there are some and ``weights == "ema"``, else the raw ones; ``lora``: the adapter only."""
    from lumina_core.training import checkpoint as ckpt_io

    mods = trainable_modules(parts.model, parts.conditioners)
    if ckpt_io.is_converted(ck):
        load_trainable(mods, _converted_weights(ck, parts.model, mods))
        return
    have_ema = (ck / ckpt_io.EMA_FILE).is_file()
    state = ckpt_io.load_weights(ck, "ema" if weights == "ema" and have_ema else "model")
    from lumina_core.training.build import trainable_state

    expected = {k: v.detach() for k, v in trainable_state(mods, lora=lora).items()}
    if not lora:
        from lumina_core.finetune.runs import is_lora_checkpoint, lora_run_message

        if is_lora_checkpoint(state):
            raise ckpt_io.CheckpointError(lora_run_message(ck))
    elif cfg.train.lora.train_also is None:  # the default: a run from before train_also trained the factors only
        from lumina_core.finetune.lora import stop_full_training

        absent = [k for k in expected if k not in state and ".lora_" not in k]
        if absent and set(state) <= set(expected) and all(k.startswith("model.") for k in absent):
            stop_full_training(parts.model, [k[len("model.") :] for k in absent])
            expected = {k: v for k, v in expected.items() if k not in absent}
    try:
        load_trainable(mods, state, lora=lora)
    except (RuntimeError, ValueError) as exc:
        raise ckpt_io.CheckpointError(describe_mismatch(ck, cfg, expected, state, exc)) from exc


def prepare_weights(parts: RunParts, cfg: Any) -> None:
    """Before training (or loading a LoRA run): load ``train.init_from`` (EMA weights) and inject the
    ``train.lora`` adapter, which freezes everything else."""
    from lumina_core.training import checkpoint as ckpt_io

    tc = cfg.train
    if tc.init_from:
        if str(tc.init_from) != "last" and not Path(str(tc.init_from)).exists():
            raise FileNotFoundError(
                f"train.init_from={tc.init_from}: no such checkpoint. Give a run's checkpoint folder (e.g. "
                "runs/<name>/checkpoints/last) or convert released / diffusers weights first: `lumina convert "
                "SOURCE DEST --from released|diffusers` and set train.init_from=DEST"
            )
        load_weights(parts, cfg, ckpt_io.resolve_weights(str(tc.init_from), cfg.run.output_dir), "ema")
    if tc.lora is not None:
        from lumina_core.finetune.lora import apply_lora
        from lumina_core.finetune.settings import lora_settings

        settings = lora_settings(cfg)
        if not apply_lora(parts.model, settings):
            raise ValueError(f"train.lora.targets {settings.targets} match no linear layer of the model")
        for enc in parts.conditioners.values():  # a class table stays as the base run trained it
            enc.requires_grad_(False)


def _converted_weights(path: Path, model: Any, mods: dict[str, Any]) -> dict[str, Any]:
    """A converted checkpoint's weights under the run's key prefixes (``model.*``); it holds the Next-DiT
    only, so the recipe must not have trainable conditioners (class tables) that need weights too."""
    from lumina_core.interop.formats import converted_state_dict

    others = sorted(k for k in mods if k != "model")
    if others:
        raise ValueError(
            f"the converted checkpoint at {path} holds the Next-DiT only, but the recipe also has trainable "
            f"conditioners {others} with no weights there; use a frozen text encoder (e.g. hf)"
        )
    specs = {name: adapter.spec for name, adapter in model.adapters.items()}
    state = converted_state_dict(path, model.config, specs)
    return {f"model.{k}": v for k, v in state.items()}


def _coerce_condition(value: Any, conditioner: Any) -> Any:
    """Command-line conditions arrive as strings: class labels become ints."""
    if getattr(conditioner, "kind", None) == "class" and isinstance(value, str):
        if not value.strip().lstrip("-").isdigit():
            raise ValueError(f"this task is class-conditioned; expected an integer label, got {value!r}")
        return int(value)
    return value


def sample(
    cfg: Any,
    checkpoint: str | Path | None,
    conditions: list | None,
    num: int,
    out_dir: str | Path,
    task: str | None = None,
    on_file: Callable[[Path], None] | None = None,
    lora: Sequence[tuple[str | Path, float]] = (),
    init: str | Path | None = None,
    strength: float | None = None,
    **overrides: Any,
) -> list[Path]:
    """Generate and write samples with the task's sampling settings (``overrides`` replace them, e.g.
    ``steps=8``). ``conditions`` given: ``num`` samples for each; None: ``num`` samples for the first held-out
    conditions. ``task``: which task (default: the recipe's first). Returns the written files.

    Files are written batch by batch as they are generated (``on_file`` is called for each as it lands),
    named ``<task>_<index>_<caption slug>`` and listed in ``out_dir/manifest.json`` with their condition,
    seed, sampler settings and checkpoint (:mod:`.manifest`); the manifest is rewritten as files land
    (:meth:`~.manifest.Manifest.save_if_due`). SIGTERM stops after the batch being written, with the
    manifest complete (:class:`lumina_core.stop_request.WorkStopped`, exit status 143).

    ``lora``: adapter files with a scale each, merged into the weights first (``W += scale * alpha/r * B A``).
    ``init``: a sample file the plugin reads (``plugin.read_file``): image-to-image (SDEdit) from it, re-running
    the last ``strength`` of the flow (0 returns the input, 1 ignores it)."""
    from lumina_core.data.stream import first_items
    from lumina_core.progress import Progress
    from lumina_core.stop_request import StopOnSigterm, WorkStopped
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.manifest import MANIFEST, Manifest, slug
    from lumina_core.training.task import build_objective

    cfg = typed_recipe(cfg)
    tcfg = next((t for t in cfg.tasks if t.name == task), None) if task else cfg.tasks[0]
    if tcfg is None:
        raise ValueError(f"unknown task {task!r}; tasks: {[t.name for t in cfg.tasks]}")
    if not getattr(build_objective(tcfg), "generative", True):
        raise ValueError(
            f"task {tcfg.name!r} is a classification task: it generates nothing; "
            "use `lumina predict RECIPE --input FILES` to classify files, or --task to pick a generative task"
        )
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    run = load_run(cfg, ck)
    if lora:
        from lumina_core.finetune.lora import load_adapters_for_sampling

        load_adapters_for_sampling(run.model, [(str(p), float(scale)) for p, scale in lora])
    chosen = run.task(tcfg.name)
    plugin = chosen.plugin
    start: list[Any] | None = None
    if init is not None:
        if not Path(init).is_file():
            raise FileNotFoundError(f"--init {init}: no such file")
        start = [plugin.read_file(init).float()]
    if conditions is None:
        held_out = first_items(chosen.dataset("val"), int(num))
        if not held_out:
            raise ValueError(f"task {tcfg.name!r}: the val split is empty, so there are no held-out conditions")
        conds = [held_out[i % len(held_out)].get("condition") for i in range(int(num))]
    else:
        conds = [_coerce_condition(c, chosen.conditioner) for c in conditions for _ in range(int(num))]
    settings = chosen.sampling_settings(**overrides)
    out = Path(out_dir)
    manifest = Manifest(
        out, {"task": tcfg.name, "checkpoint": str(ck), **settings.describe("solver", "steps", "grid", "cfg_scale")}
    )
    paths: list[Path] = []

    def write(start: int, samples: list[Any], seed: int) -> None:
        chunk = conds[start : start + len(samples)]
        for k, (x, c) in enumerate(zip(samples, chunk, strict=True)):
            written = [Path(p) for p in plugin.write_preview([x], [c], out, f"{tcfg.name}_{start + k:05d}_{slug(c)}")]
            manifest.add(written, condition=c, seed=seed, index_in_batch=k, batch_size=len(chunk))
            paths.extend(written)
            for p in written:
                if on_file is not None:
                    on_file(p)
        progress.update(len(samples))
        manifest.save_if_due()  # a run stopped at any point keeps its files mapped to their conditions
        if stop.requested:
            manifest.save()
            raise WorkStopped(
                f"stopped by SIGTERM after {start + len(samples)} of {len(conds)} samples; the {len(paths)} "
                f"file(s) written are listed in {out / MANIFEST}"
            )

    try:
        with StopOnSigterm() as stop, Progress(len(conds), f"sampling {tcfg.name}", "samples") as progress:
            chosen.generate(
                run.model, conds, device=resolve_device(str(cfg.run.device)), on_batch=write,
                init=None if start is None else start * len(conds), strength=strength, **overrides,
            )  # fmt: skip
    finally:
        if manifest.entries:
            manifest.save()
    return paths


def evaluate(cfg: Any, checkpoint: str | Path | None = None, **overrides: Any) -> dict[str, float]:
    """Generate for the first ``eval.num_samples`` held-out items of every task (their conditions and
    shapes, the task's sampling settings, EMA weights), score with ``plugin.evaluate(samples, items,
    dataset)``; return ``{"<task>/<metric>": value}`` and write it to ``<run_dir>/metrics.json``.

    Each sample is graded once where the checker allows it (``score_is_mean`` or ``score_with_verdicts``, see
    :mod:`lumina_core.training.verdicts`): the same grading gives the scores and each sample's verdict in
    ``<run_dir>/eval/<task>/manifest.json`` (:func:`write_scored_samples`)."""
    from lumina_core.data.stream import first_items
    from lumina_core.progress import Progress
    from lumina_core.training import checkpoint as ckpt_io
    from lumina_core.training.verdicts import VerdictRecorder

    cfg = typed_recipe(cfg)
    ck = ckpt_io.resolve_weights(checkpoint or "last", cfg.run.output_dir)
    run = load_run(cfg, ck)
    dev = resolve_device(str(cfg.run.device))
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}  # non-scalar results (a classifier's confusion matrix), metrics.json only
    for name, task in run.tasks.items():
        ev = task.config.eval
        for suffix, val in task.eval_splits():
            items = first_items(val, int(ev.num_samples))
            settings = task.sampling_settings(**overrides)
            if not task.generative:  # evaluates held-out items itself (a classifier)
                scores, extra = task.objective.evaluate(
                    run.model, name, task.plugin, task.conditioner, items, dev, int(ev.batch_size),
                    settings.rope_scaling,
                )  # fmt: skip
                metrics.update({f"{name}/{k}{suffix}": float(v) for k, v in scores.items()})
                details[f"{name}{suffix}"] = extra
                continue
            with Progress(len(items), f"evaluating {name}{suffix}", "samples") as progress:
                samples = task.generate(
                    run.model, [it.get("condition") for it in items], task.shapes_of(items), device=dev,
                    on_batch=lambda start, batch, seed: progress.update(len(batch)), **overrides,
                )  # fmt: skip
            recorder = VerdictRecorder(val, samples, items)  # each sample graded once (training/verdicts.py)
            for k, v in task.plugin.evaluate(samples, items, recorder.dataset).items():
                metrics[f"{name}/{k}{suffix}"] = float(v)
            scored_dir = Path(cfg.run.output_dir) / "eval" / f"{name}{suffix}"
            write_scored_samples(
                scored_dir, task.plugin, val, items, samples, {"checkpoint": str(ck), **settings.describe()},
                verdicts=recorder.verdicts, score_kwargs=recorder.kwargs,
            )  # fmt: skip
    run_dir = Path(cfg.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = (
        json.loads((ck / ckpt_io.META_FILE).read_text()).get("step")
        if (ck / ckpt_io.META_FILE).is_file()
        else None
    )
    record = {"checkpoint": str(ck), "step": step, "task_steps": ckpt_io.task_steps(ck), "metrics": metrics}
    if details:
        record["details"] = details
    write_atomic(run_dir / "metrics.json", json.dumps(record, indent=2) + "\n", "the evaluation's metrics")
    return metrics


def write_scored_samples(
    out_dir: Path,
    plugin: Any,
    dataset: Any,
    items: list[dict],
    samples: list[Any],
    settings: dict[str, Any],
    verdicts: Sequence[dict[str, float]] | None = None,
    score_kwargs: dict[str, Any] | None = None,
) -> Path:
    """The samples an evaluation scored, as files, with the checker's verdict on each one.

    ``out_dir`` gets one preview per sample (named ``<index>_<condition slug>``) and ``manifest.json``: per
    file, the condition, the ground truth (``meta``) and the scores the checker gives that sample alone
    - so a checker that is too generous, or a model that fails on one kind of prompt, shows up by reading
    it. ``verdicts`` are those scores when the evaluation already has them (one per sample, in order: see
    :class:`lumina_core.training.verdicts.VerdictRecorder`); otherwise each sample is graded here with
    ``dataset.score([sample], [item], **score_kwargs)``. Datasets without a checker get the files and
    conditions only."""
    import shutil

    from lumina_core.training.manifest import Manifest, slug

    if verdicts is not None and len(verdicts) != len(samples):
        raise ValueError(f"write_scored_samples: {len(verdicts)} verdicts for {len(samples)} samples")
    if out_dir.exists():
        shutil.rmtree(out_dir)  # the verdicts of the previous evaluation of this run
    score = getattr(dataset, "score", None)
    manifest = Manifest(out_dir, {k: v for k, v in settings.items() if k != "rope_scaling"})
    for i, (x, item) in enumerate(zip(samples, items, strict=True)):
        cond = item.get("condition")
        files = plugin.write_preview([x], [cond], out_dir, f"{i:05d}_{slug(cond)}")
        if verdicts is not None:
            verdict: dict[str, float] | None = {k: float(v) for k, v in verdicts[i].items()}
        elif callable(score):
            verdict = {k: float(v) for k, v in score([x], [item], **(score_kwargs or {})).items()}
        else:
            verdict = None
        manifest.add(files, condition=cond, meta=item.get("meta", {}), verdict=verdict)
    return manifest.save()

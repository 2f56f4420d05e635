"""Training callbacks: atomic checkpoints and sample previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from lumina_core.training import checkpoint as ckpt_io


class CheckpointEvery(L.Callback):
    """Save every ``every`` optimiser steps and at the end of training (see :mod:`.checkpoint`)."""

    def __init__(self, root: str | Path, every: int, keep: int | None = 3) -> None:
        self.root, self.every, self.keep = Path(root), int(every), keep
        self._saved_step = -1

    def save(self, module: Any) -> Path | None:
        """Write a checkpoint (rank 0; in a distributed run every rank calls this, to gather its random state)."""
        from lumina_core.config.typed import as_dict
        from lumina_core.training.recipe_changes import recipe_tree

        state = module.training_state()  # collective in a distributed run
        self._saved_step = module.step
        if getattr(module, "sharded", False):  # gathered whole from the shards: every rank takes part
            weights, ema = module.full_trainable_state(), module.full_ema_state()
        else:
            weights, ema = {k: v.detach() for k, v in module.trainable_state().items()}, module.ema.state_dict()
        if module.global_rank != 0:  # rank 0 writes it; the others know where (for their own messages)
            module.last_checkpoint = self.root / ckpt_io.checkpoint_name(module.step)
            return None
        path = ckpt_io.save_checkpoint(
            self.root,
            module.step,
            weights,
            ema,
            state,
            meta={
                "tasks": module.task_names,
                "data_position": module.data_position,
                "nonfinite_skipped": module.nonfinite_skipped,
                "model": as_dict(module.cfg.model),
                "recipe": recipe_tree(module.cfg),  # what a resume compares its recipe with
            },
            keep=self.keep,
        )
        module.last_checkpoint = path
        if module.cfg.train.lora is not None:
            self.save_adapter(module)
        return path

    def save_adapter(self, module: Any) -> Path:
        """``<run>/lora/adapter.safetensors``: the adapter (EMA factors) of the newest checkpoint, as ``lumina
        lora merge|export`` and ``lumina sample --lora`` read it."""
        from lumina_core.finetune.lora import save_adapter
        from lumina_core.finetune.settings import lora_settings

        meta = {"step": module.step, "base": module.cfg.train.init_from, "run": str(module.run_dir)}
        with module.ema_weights():
            return save_adapter(
                module.run_dir / "lora" / "adapter.safetensors", module.model, lora_settings(module.cfg), meta
            )

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        self._saved_step = module.step  # a resumed run does not rewrite the checkpoint it came from

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every > 0 and module.step % self.every == 0 and module.step != self._saved_step:
            self.save(module)

    def on_train_end(self, trainer, module) -> None:
        if module.step != self._saved_step:
            self.save(module)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        """SIGTERM (Lightning raises its SIGTERMException between steps): save, so nothing is lost."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and module.step != self._saved_step:
            if (
                module.world > 1
            ):  # the other ranks may be gone: no collective; the last periodic checkpoint stands
                return
            self.save(module)


class SayWhichRankDied(L.Callback):
    """On rank 0 of a run Lightning's launcher started: when a child rank dies, the launcher's watcher says which
    one in a paragraph (``describe``) before it ends the run (:func:`.ranks.speak_before_the_launcher_kills`)."""

    def __init__(self, describe: Any) -> None:
        self.describe = describe

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        if trainer.world_size > 1 and trainer.is_global_zero:
            from lumina_core.training.ranks import speak_before_the_launcher_kills

            speak_before_the_launcher_kills(self.describe)


class StepProgress(L.Callback):
    """A progress bar of optimiser steps with rate and time left, on a terminal only (elsewhere the
    module's periodic log lines, which also give the rate and time left, are the progress)."""

    def __init__(self) -> None:
        self._bar = None

    def on_train_start(self, trainer, module) -> None:
        import sys

        from lumina_core.progress import Progress

        if sys.stderr.isatty() and trainer.is_global_zero:
            self._bar = Progress(int(module.cfg.train.max_steps), "training", "steps", initial=module.step)
            self._last = module.step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._bar is not None and module.step > self._last:
            self._bar.update(module.step - self._last)
            self._last = module.step

    def on_train_end(self, trainer, module) -> None:
        self.close()

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class PreviewSamples(L.Callback):
    """Every ``every`` steps (0: only at the end) and at the end of training, generate samples for the first
    ``num`` held-out conditions of each task with the EMA weights; write them with ``plugin.write_preview``
    into ``<run_dir>/previews/`` and log them with ``plugin.preview_to_tensorboard``. The held-out items are
    each task run's ``preview_items`` (:class:`~lumina_core.training.task_run.TaskRun`; none for a classifier)."""

    def __init__(self, out_dir: str | Path, every: int, num: int = 4) -> None:
        self.out_dir, self.every, self.num = Path(out_dir), int(every), int(num)
        self._done_step = -1

    def preview(self, module: Any) -> list[Path]:
        """Generate and (rank 0) write the previews; a sharded model needs every rank to run the model, so
        under ``train.strategy: fsdp`` every rank generates and only rank 0 writes."""
        paths: list[Path] = []
        writer = module.tb_writer()
        writes = module.global_rank == 0
        with module.ema_weights():
            for name, run in module.runs.items():
                task, items = run.task, run.preview_items[: self.num]
                if not items:
                    continue
                conditions = [it.get("condition") for it in items]
                samples = task.generate(
                    module.model,
                    conditions,
                    task.shapes_of(items),
                    device=module.device,
                    batch_size=len(items),
                    refuse_nonfinite=False,  # a preview never stops a run: the loss checks decide
                )
                if not writes:
                    continue
                stem = f"{name}_step{module.step:07d}"
                paths += list(task.plugin.write_preview(samples, conditions, self.out_dir, stem))
                if writer is not None:
                    task.plugin.preview_to_tensorboard(writer, samples, module.step, f"preview/{name}")
        self._done_step = module.step
        return paths

    @staticmethod
    def _runs_here(trainer: L.Trainer, module: Any) -> bool:
        # DDP: every rank holds the same weights, rank 0 previews alone; FSDP: the ranks hold shards, all run
        return trainer.is_global_zero or bool(getattr(module, "sharded", False))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        due = self.every > 0 and module.step % self.every == 0 and module.step != self._done_step
        if due and self._runs_here(trainer, module):
            with torch.no_grad():
                self.preview(module)

    def on_train_end(self, trainer, module) -> None:
        if module.step != self._done_step and self._runs_here(trainer, module):
            with torch.no_grad():
                self.preview(module)

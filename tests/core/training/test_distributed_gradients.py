"""Data-parallel gradients on 2 CPU processes (gloo): after the backward of the first step, every rank holds
the mean of the two ranks' gradients, each rank's from its own data slice and its own noise / time generator.

The reference is computed here, in one process and without torch.distributed: the same initial weights (the
run's seed), for rank r the first batch of rank r's slice of the seeded stream and a generator seeded as rank
r's is (``run.seed + RANK_SEED_STRIDE * r``), the loss's gradient through the real ``Task.loss``; the
reference is the mean over r. The distributed run is the real ``lumina train`` (Lightning's launcher, DDP or
FSDP2); a Lightning callback added to its trainer only observes the gradients (before the optimiser step).
The two ranks' own gradients differ widely, so a run that did not average (or averaged the wrong data)
fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "digits_tiny.yaml"
OVERRIDES = [
    "train.threads=1", "train.warmup_steps=0", "train.lr_schedule=constant", "train.grad_clip=0",
    "tasks.0.data.batch_size=4", "model.n_layers=2", "train.max_steps=1", "train.ckpt_every=1",
]  # fmt: skip

#: run by every rank (Lightning's launcher starts rank 1 with the same command line): ``lumina train`` with an
#: observer callback that saves the gradients of the first step, gathered whole under FSDP
PROBE = """
import sys
from pathlib import Path

import lightning as L
import torch

OUT = Path(sys.argv[1])


class GradProbe(L.Callback):
    def on_before_optimizer_step(self, trainer, module, optimizer):
        from lumina_core.training.sharding import full_tensor

        if module.step == 0:
            grads = {n: full_tensor(p.grad).detach().clone() for n, p in module.named_parameters() if p.grad is not None}
            torch.save(grads, OUT / f"grads_rank{module.global_rank}.pt")


_init = L.Trainer.__init__


def _with_probe(self, *args, callbacks=(), **kwargs):
    _init(self, *args, callbacks=[*callbacks, GradProbe()], **kwargs)


L.Trainer.__init__ = _with_probe
from lumina_core.cli.main import main

sys.exit(main(["train", *sys.argv[2:]]))
"""


def reference_gradients(world: int = 2) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The mean over ranks of each rank's loss gradient (and the per-rank gradients), in one process."""
    import lightning as L

    from lumina_core.config.loader import load_recipe
    from lumina_core.config.typed import typed_recipe
    from lumina_core.training.build import build_run
    from lumina_core.training.data import MultiTaskBatches, task_loader
    from lumina_core.training.module import RANK_SEED_STRIDE

    cfg = typed_recipe(load_recipe(RECIPE, [*OVERRIDES, "run.output_dir=unused"]))
    seed = int(cfg.run.seed)
    L.seed_everything(seed, verbose=False)  # as train() does before building the model
    parts = build_run(cfg)
    ((name, task),) = parts.tasks.items()
    params = {f"model.{n}": p for n, p in parts.model.named_parameters()}
    params |= {
        f"conditioners.{name}.{n}": p for n, p in task.conditioner.named_parameters() if p.requires_grad
    }
    ds = task.dataset("train", check_condition_kind=True)
    per_rank = []
    for rank in range(world):
        loader = task_loader(ds, task.batch_size, 0, seed + 0, 0, rank, world)
        batch = next(iter(MultiTaskBatches({name: loader}, "all", None, seed, 0)))[name]
        gen = torch.Generator().manual_seed(seed + RANK_SEED_STRIDE * rank)
        loss = task.loss(parts.model, batch, gen, "cpu")
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        per_rank.append(
            {
                k: torch.zeros_like(p) if g is None else g
                for (k, p), g in zip(params.items(), grads, strict=True)
            }
        )
    mean = {k: sum(r[k] for r in per_rank) / world for k in params}
    return mean, per_rank


def probe_run(tmp_path: Path, strategy: str) -> list[dict[str, torch.Tensor]]:
    script = tmp_path / "probe_train.py"
    script.write_text(PROBE)
    out = tmp_path / strategy
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LUMINA_CACHE_DIR": str(tmp_path / "cache")}
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [
        sys.executable, str(script), str(out), str(RECIPE), f"run.output_dir={out / 'run'}", "train.devices=2",
        f"train.strategy={strategy}", *OVERRIDES,
    ]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return [torch.load(out / f"grads_rank{r}.pt") for r in range(2)]


@pytest.fixture(scope="module")
def reference():
    """The one-process reference, computed once: both strategies compare against the same gradients (the
    same recipe, overrides and seed), and each computation builds the run and its dataset again."""
    return reference_gradients()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_gradient_is_the_mean_of_the_ranks_gradients(tmp_path, strategy, reference):
    ranks = probe_run(tmp_path, strategy)
    mean, per_rank = reference
    for grads in ranks:  # every rank holds the same averaged gradient
        missing = set(mean) - set(grads)
        assert all(not mean[k].any() for k in missing), f"no gradient for {sorted(missing)}"
        for k, g in grads.items():
            torch.testing.assert_close(g, mean[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    # the test can fail: the ranks' own gradients are far apart (a run that did not average shows it)
    spread = max((per_rank[0][k] - per_rank[1][k]).abs().max().item() for k in mean)
    assert spread > 1e-2

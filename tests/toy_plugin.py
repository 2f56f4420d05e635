"""A tiny test-only modality: multi-channel 1-D sequences with procedural ground truth.

Registered under test-only names (importing this module registers them):

* modality ``_test_seq``: a sample is a (C, N) tensor; tokens are patches of ``p`` consecutive positions,
  flattened in (C, p) order -> (N / p, C p); one position axis (the patch index).
* dataset ``_test_bumps``: class ``k`` of ``K`` is a Gaussian bump centred at ``(k + 1/2) N / K`` on
  channel 0 and a constant level ``k / K - 1/2`` on the other channels, times a random amplitude in
  [0.8, 1.2]; ``score`` checks the class from the bump's position (ground truth in ``meta``).

Also: an exact Gaussian "oracle" velocity field and model for sampler tests, and ``tiny_recipe`` /
``seq_task`` for the training tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.data import LuminaDataset
from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import DATASETS, MODALITIES
from lumina_core.tokens import TokenBatch


@MODALITIES.register("_test_seq", override=True)
class SeqPlugin(ModalityPlugin):
    name = "_test_seq"
    conditions = frozenset({"class", "none"})
    preview_formats = ("csv",)

    def __init__(self, channels: int = 2, patch: int = 2, length: int = 16) -> None:
        super().__init__(channels=channels, patch=patch, length=length)
        self.c, self.p, self.n = channels, patch, length

    def adapter_spec(self) -> AdapterSpec:
        d = self.c * self.p
        return AdapterSpec(
            d, d, num_axes=1, axis_split=(1,), rope_layout="blocked", train_extent=(self.n // self.p,)
        )

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        toks, pos, shapes = [], [], []
        for s in samples:
            if s.dim() != 2 or s.shape[0] != self.c or s.shape[1] % self.p:
                raise ValueError(
                    f"expected a ({self.c}, N) sample with N divisible by {self.p}; got {tuple(s.shape)}"
                )
            n = s.shape[1] // self.p
            toks.append(s.reshape(self.c, n, self.p).permute(1, 0, 2).reshape(n, self.c * self.p))
            pos.append(torch.arange(n, dtype=torch.float32, device=s.device)[:, None])
            shapes.append(tuple(s.shape))
        return TokenBatch.from_sequences(toks, pos, shapes)

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        out = []
        for (tok, _), shape in zip(batch.unpad(), batch.shapes, strict=True):
            n = tok.shape[0]
            out.append(tok.reshape(n, self.c, self.p).permute(1, 0, 2).reshape(self.c, n * self.p))
            assert tuple(out[-1].shape) == tuple(shape)
        return out

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return tuple(sample.shape)

    def default_shape(self) -> tuple[int, ...]:
        return (self.c, self.n)

    def write_preview(self, samples, conditions, out_dir, stem) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{stem}.csv"
        rows = []
        for s, c in zip(samples, conditions, strict=True):
            rows.append(f"{c}," + ",".join(f"{v:.4f}" for v in s.flatten().tolist()))
        path.write_text("\n".join(rows) + "\n")
        return [path]

    def preview_to_tensorboard(self, writer, samples, step, tag) -> None:
        writer.add_histogram(tag, torch.cat([s.flatten() for s in samples]), step)


def bump_template(k: int, num_classes: int, channels: int, length: int) -> Tensor:
    """The noiseless sample of class ``k`` (amplitude 1)."""
    x = torch.arange(length, dtype=torch.float32)
    centre = (k + 0.5) * length / num_classes
    width = length / (2.5 * num_classes)
    out = torch.empty(channels, length)
    out[0] = 2.0 * torch.exp(-0.5 * ((x - centre) / width) ** 2) - 0.5
    out[1:] = k / num_classes - 0.5
    return out


@DATASETS.register("_test_bumps", override=True)
class BumpDataset(LuminaDataset):
    modality = "_test_seq"

    @property
    def condition_kind(self) -> str:
        return "class" if self.conditional else "none"

    def __init__(
        self,
        split: str = "train",
        size: int = 64,
        num_classes: int = 4,
        channels: int = 2,
        lengths: Sequence[int] = (16,),
        seed: int = 0,
        conditional: bool = True,
    ) -> None:
        self.split, self.size, self.k, self.c = split, int(size), int(num_classes), int(channels)
        self.lengths, self.seed, self.conditional = [int(n) for n in lengths], int(seed), bool(conditional)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> dict:
        if not 0 <= idx < self.size:
            raise IndexError(idx)
        g = torch.Generator().manual_seed(
            self.seed * 1_000_003 + idx * 7 + (0 if self.split == "train" else 1)
        )
        k = int(torch.randint(self.k, (1,), generator=g))
        amp = 0.8 + 0.4 * float(torch.rand(1, generator=g))
        n = self.lengths[idx % len(self.lengths)]
        sample = amp * bump_template(k, self.k, self.c, n)
        return {
            "sample": sample,
            "condition": k if self.conditional else None,
            "meta": {"class": k, "amp": amp},
        }

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        """``class_acc``: bump position nearest the true class's centre; ``template_mse`` to the template."""
        hits, mse = 0, 0.0
        for s, it in zip(samples, items, strict=True):
            n = s.shape[1]
            centres = torch.tensor([(k + 0.5) * n / self.k for k in range(self.k)])
            pred = int((centres - float(s[0].argmax())).abs().argmin())
            hits += int(pred == it["meta"]["class"])
            tmpl = it["meta"]["amp"] * bump_template(it["meta"]["class"], self.k, self.c, n)
            mse += float((s.float() - tmpl).pow(2).mean())
        return {"class_acc": hits / max(1, len(samples)), "template_mse": mse / max(1, len(samples))}


def gaussian_oracle_velocity(mu: float, std: float):
    """Exact marginal velocity of the linear path for data ``N(mu, std^2)`` per coordinate:
    ``v(x, t) = mu + (t std^2 - (1 - t)) (x - t mu) / (t^2 std^2 + (1 - t)^2)``; its flow maps noise ``x0``
    to ``mu + std x0`` exactly."""

    def v(x: Tensor, t: Tensor) -> Tensor:
        tt = t.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        var = tt**2 * std**2 + (1 - tt) ** 2
        return mu + (tt * std**2 - (1 - tt)) * (x - tt * mu) / var

    return v


class OracleModel(torch.nn.Module):
    """Stand-in 'model' with the Gaussian oracle velocity; counts calls and the batch sizes it saw."""

    def __init__(self, mu: float = 0.5, std: float = 0.3) -> None:
        super().__init__()
        self.v = gaussian_oracle_velocity(mu, std)
        self.calls: list[int] = []
        self.kwargs: list[dict] = []

    def velocity(self, batch: TokenBatch, t: Tensor, cond=None, task=None, **kw) -> Tensor:
        self.calls.append(batch.batch_size)
        self.kwargs.append(kw)
        return self.v(batch.tokens, t) * batch.mask[..., None]


def seq_task(name: str = "seq", conditioned: bool = True, **data: Any) -> dict:
    """A recipe task on the toy plugin: bump sequences of length 16 and 8, class-conditioned or not."""
    enc = {"name": "class", "params": {"num_classes": 4, "dim": 16}} if conditioned else {"name": "none"}
    return {
        "name": name,
        "modality": {"name": "_test_seq", "params": {}},
        "data": {
            "name": "_test_bumps",
            "params": {"size": 24, "lengths": [16, 8], "conditional": conditioned, **data},
            "batch_size": 6,
        },
        "conditioning": {"encoder": enc},
        "sampling": {"steps": 2, "solver": {"name": "euler"}},
        "eval": {"num_samples": 4, "batch_size": 4},
    }


def tiny_recipe(out_dir, tasks: list[dict] | None = None, **train: Any):
    """A 2-layer, dim-32 trunk on the toy tasks; ``train`` overrides the train section."""
    from omegaconf import OmegaConf

    from lumina_core.config.schema import RecipeConfig

    return OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "run": {"name": "test", "output_dir": str(out_dir), "device": "cpu", "seed": 0},
            "model": {"dim": 32, "n_layers": 2, "n_heads": 2},
            "tasks": tasks or [seq_task()],
            "train": {
                "max_steps": 4,
                "ckpt_every": 2,
                "log_every": 1,
                "lr": 1e-3,
                "ema_decay": 0.99,
                **train,
            },
        },
    )


__all__ = [
    "BumpDataset",
    "OracleModel",
    "SeqPlugin",
    "bump_template",
    "gaussian_oracle_velocity",
    "seq_task",
    "tiny_recipe",
]

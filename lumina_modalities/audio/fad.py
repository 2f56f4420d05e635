"""An FAD-style score: Frechet distance between embeddings of generated and reference clips.

The embedding network is in-project (no downloads): a small CNN on normalised log-mels (the
:class:`~.mel.MelFrontend` at 22.05 kHz), trained to classify the procedural ``tones`` classes (kind x
pitch), whose 32-d pooled penultimate features are the embedding. It is trained once, deterministically
(``seed``), and cached under ``$LUMINA_CACHE_DIR`` (default ``~/.cache/lumina``) keyed by its settings.

    FD = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2))

with means and covariances of the two embedding sets (scipy's ``sqrtm``; its tiny imaginary part is
dropped). With few clips the covariances are rank-deficient, so compare scores at equal sample counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lumina_core.progress import first_use

from .mel import MelFrontend, MelSettings
from .tones import KINDS, ToneDataset

EMBED_DIM = 32


class AudioFeatureNet(nn.Module):
    """log-mel (B, 1, 80, N) -> 32-d embedding (``embed``) and class logits (``forward``)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers, ch = [], 1
        for out in (8, 16, 32, EMBED_DIM):
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(EMBED_DIM, num_classes)

    def embed(self, mel: Tensor) -> Tensor:
        return self.body(mel).mean(dim=(2, 3))

    def forward(self, mel: Tensor) -> Tensor:
        return self.head(self.embed(mel))


def _label(meta: dict, pitches: Sequence[float]) -> int:
    pitch = meta.get("pitch", meta.get("end_hz"))
    p = pitches.index(pitch) if pitch in pitches else 0
    return KINDS.index(meta["kind"]) * len(pitches) + p


class FeatureExtractor:
    """The trained embedding network plus its frontend; ``embed(waveforms, sample_rate) -> (B, 32)``."""

    def __init__(self, train_items: int = 600, steps: int = 300, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.frontend = MelFrontend(MelSettings())
        self.settings = {"train_items": train_items, "steps": steps, "seed": seed, "version": 1}
        key = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:12]
        from lumina_core.paths import cache_dir as core_cache_dir

        root = Path(cache_dir) if cache_dir else core_cache_dir()
        self.path = root / f"audio_fad_{key}.pt"
        self.pitches = (220.0, 330.0, 440.0, 660.0, 880.0)
        with torch.inference_mode(False):  # real parameters even when built inside evaluation
            self.net = AudioFeatureNet(len(KINDS) * len(self.pitches))
        if self.path.is_file():
            self.net.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
        else:
            self._train()
        self.net.eval()

    def _mels(self, waveforms: Sequence[Tensor], sample_rate: int) -> Tensor:
        import torchaudio.functional as AF

        out = []
        for w in waveforms:
            w = w.detach().float().cpu().reshape(1, -1)
            if sample_rate != self.frontend.settings.sample_rate:
                w = AF.resample(w, sample_rate, self.frontend.settings.sample_rate)
            out.append((self.frontend(w).clamp(min=-11.5129) + 8.0) / 3.5)  # (1, 80, N)
        n = max(m.shape[-1] for m in out)
        return torch.stack([nn.functional.pad(m, (0, n - m.shape[-1]), value=(-11.5129 + 8.0) / 3.5) for m in out])

    def _train(self) -> None:
        # gradients on whatever the caller's mode: a first score on a fresh machine trains from inside eval
        with torch.inference_mode(False), torch.enable_grad():
            self._fit()

    def _fit(self) -> None:
        s = self.settings
        gen = torch.Generator().manual_seed(s["seed"])
        torch.manual_seed(s["seed"])
        ds = ToneDataset(size=s["train_items"], seed=s["seed"] + 12345, pitches=self.pitches)
        items = [ds[i] for i in range(len(ds))]
        mels = self._mels([it["sample"] for it in items], ds.sample_rate)
        labels = torch.tensor([_label(it["meta"], self.pitches) for it in items])
        opt = torch.optim.AdamW(self.net.parameters(), lr=3e-3)
        self.net.train()
        bar = first_use("training the FAD-style audio feature network on procedural tones", self.path.parent)
        for _ in range(s["steps"]):
            idx = torch.randint(len(items), (32,), generator=gen)
            loss = nn.functional.cross_entropy(self.net(mels[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
        bar.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save(self.net.state_dict(), tmp)
        tmp.replace(self.path)

    @torch.no_grad()
    def embed(self, waveforms: Sequence[Tensor], sample_rate: int) -> np.ndarray:
        return self.net.embed(self._mels(waveforms, sample_rate)).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` and ``b`` (module doc)."""
    from scipy import linalg

    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"the Frechet distance needs at least 2 embeddings per set; got {a.shape[0]}, {b.shape[0]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular covariances (few clips); the result is used
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


_EXTRACTORS: dict[tuple, FeatureExtractor] = {}


def _extractor(**kwargs) -> FeatureExtractor:
    key = tuple(sorted(kwargs.items()))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = FeatureExtractor(**kwargs)
    return _EXTRACTORS[key]


def embed_clips(waveforms: Sequence[Tensor], sample_rate: int, **kwargs) -> Tensor:
    """``(N, D)`` embeddings of waveforms from the cached feature network (the FAD-style score's)."""
    return torch.from_numpy(_extractor(**kwargs).embed(waveforms, sample_rate))


def fad_score(generated: Sequence[Tensor], reference: Sequence[Tensor], sample_rate: int, **kwargs) -> float:
    """Frechet distance between the embeddings of ``generated`` and ``reference`` waveforms."""
    ext = _extractor(**kwargs)
    return frechet_distance(ext.embed(generated, sample_rate), ext.embed(reference, sample_rate))

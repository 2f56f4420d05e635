"""An FID-style score with an in-project feature network (the standard Inception weights cannot be fetched).

The feature network is a small CNN trained to recognise the shape, colour and position of procedural
shapes images (:mod:`.shapes`); its 128-d penultimate activations play the role of Inception's pool
features in ``torchmetrics``' Frechet distance

    FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).

Training is deterministic (fixed seeds, one thread) and takes a few seconds on a CPU; the weights are
cached as safetensors under ``$LUMINA_CACHE_DIR`` (default ``~/.cache/lumina``) and in memory, so it
happens once per machine. Inputs of any size are resized to 32x32; greyscale is repeated to RGB. Scores
are comparable only between runs using the same feature network version (:data:`FEATURE_NET_VERSION`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumina_core.progress import first_use

FEATURE_NET_VERSION = "shapes-cnn-v2"
NUM_FEATURES = 128
_TRAIN_ITEMS, _EPOCHS, _BATCH, _LR = 3000, 3, 64, 3e-3
_CACHE: dict[str, nn.Module] = {}


class ShapesFeatureNet(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> (B, 128) features; heads classify shape, colour and position."""

    num_features = NUM_FEATURES

    def __init__(self, n_shapes: int = 3, n_colors: int = 4, n_positions: int = 5) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.GELU())

        self.body = nn.Sequential(
            block(3, 32),
            nn.MaxPool2d(2),  # 16x16
            block(32, 64),
            nn.MaxPool2d(2),  # 8x8
            block(64, NUM_FEATURES),
        )
        self.heads = nn.ModuleDict(
            {
                "shape": nn.Linear(NUM_FEATURES, n_shapes),
                "color": nn.Linear(NUM_FEATURES, n_colors),
                "position": nn.Linear(NUM_FEATURES, n_positions),
            }
        )

    def features(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images in [0, 1]; got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        h = self.body(x.float() * 2 - 1)
        # spatial mean and max keep both "what" and a coarse "where" (position is part of the content)
        return h.mean(dim=(2, 3)) + h.amax(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def logits(self, x: Tensor) -> dict[str, Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


def cache_dir() -> Path:
    from lumina_core.paths import cache_dir as core_cache_dir

    return core_cache_dir()


def train_feature_net(
    num_items: int = _TRAIN_ITEMS, epochs: int = _EPOCHS, seed: int = 0
) -> ShapesFeatureNet:
    """Fit the feature network on procedural shapes (cross-entropy on the three attribute heads).

    Gradients are switched on here whatever the caller's mode: the first score on a fresh machine trains
    this network from inside ``fid_score``, which runs under ``torch.no_grad()``."""
    with torch.inference_mode(False), torch.enable_grad():
        return _fit_feature_net(num_items, epochs, seed)


def _fit_feature_net(num_items: int, epochs: int, seed: int) -> ShapesFeatureNet:
    from .shapes import COLORS, POSITIONS, SHAPES, ShapesDataset

    torch.manual_seed(seed)
    ds = ShapesDataset(size=32, length=num_items, split="train", seed=seed + 1000)
    xs, ys = [], {"shape": [], "color": [], "position": []}
    for i in range(num_items):
        item = ds[i]
        xs.append((item["sample"] + 1) / 2)
        ys["shape"].append(SHAPES.index(item["meta"]["shape"]))
        ys["color"].append(list(COLORS).index(item["meta"]["color"]))
        ys["position"].append(list(POSITIONS).index(item["meta"]["position"]))
    x = torch.stack(xs)
    y = {k: torch.tensor(v) for k, v in ys.items()}
    net = ShapesFeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=_LR, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    bar = first_use("training the FID-style feature network on procedural shapes", cache_dir())
    for _ in range(epochs):
        order = torch.randperm(num_items, generator=gen)
        for start in range(0, num_items, _BATCH):
            idx = order[start : start + _BATCH]
            # light augmentation: noise, so features of imperfect samples stay meaningful
            xb = (x[idx] + 0.05 * torch.randn(x[idx].shape, generator=gen)).clamp(0, 1)
            logits = net.logits(xb)
            loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
    bar.close()
    return net.eval().requires_grad_(False)


def feature_net(device: torch.device | str | None = None) -> ShapesFeatureNet:
    """The cached feature network (memory, then disk, else trained now and saved)."""
    net = _CACHE.get(FEATURE_NET_VERSION)
    if net is None:
        from safetensors.torch import load_file, save_file

        path = cache_dir() / f"fid_{FEATURE_NET_VERSION}.safetensors"
        net = ShapesFeatureNet()
        if path.is_file():
            net.load_state_dict(load_file(str(path)))
            net.eval().requires_grad_(False)
        else:
            threads = torch.get_num_threads()
            net = train_feature_net()
            torch.set_num_threads(threads)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
            os.replace(tmp, path)  # atomic: concurrent processes never read a half-written file
        _CACHE[FEATURE_NET_VERSION] = net
    return net.to(device) if device is not None else net


def _batch01(images: Sequence[Tensor]) -> Tensor:
    """Images in [-1, 1] of possibly different sizes -> (B, 3, 32, 32) in [0, 1]."""
    out = []
    for x in images:
        if x.dim() != 3 or x.shape[0] not in (1, 3):
            raise ValueError(f"FID expects (1 or 3, H, W) images; got {tuple(x.shape)}")
        x = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).expand(3, -1, -1)[None]
        out.append(F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out)


@torch.no_grad()
def embed_images(images: Sequence[Tensor], batch_size: int = 256) -> Tensor:
    """``(N, D)`` features of images in [-1, 1] from the cached feature network (the FID-style score's)."""
    net = feature_net()
    return torch.cat(
        [net.features(_batch01(images[s : s + batch_size])) for s in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def fid_score(generated: Sequence[Tensor], real: Sequence[Tensor], batch_size: int = 256) -> float:
    """Frechet distance between feature statistics of ``generated`` and ``real`` images (both in [-1, 1])."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(generated) < 2 or len(real) < 2:
        raise ValueError(f"FID needs at least 2 images on each side; got {len(generated)} and {len(real)}")
    metric = FrechetInceptionDistance(feature=feature_net(), normalize=True)
    for images, is_real in ((real, True), (generated, False)):
        for start in range(0, len(images), batch_size):
            metric.update(_batch01(images[start : start + batch_size]), real=is_real)
    return float(metric.compute())

"""Image previews (PNG grid with prompts) and the FID-style score with the in-project feature network."""

from __future__ import annotations

import numpy as np
import torch

from lumina_modalities.image import ImagePlugin
from lumina_modalities.image.shapes import ShapesDataset


def test_preview_grid_and_individual_pngs(tmp_path):
    from PIL import Image

    plugin = ImagePlugin(patch_size=2, image_size=16, fid=False)
    red = torch.full((3, 16, 16), -1.0)
    red[0] = 1.0
    samples = [red, torch.zeros(3, 16, 32)]
    paths = plugin.write_preview(samples, ["a red square", 7], tmp_path, "step_000100")
    assert [p.name for p in paths] == ["step_000100.png", "step_000100_000.png", "step_000100_001.png"]
    single = np.asarray(Image.open(paths[1]))
    assert single.shape == (16, 16, 3) and (single[..., 0] == 255).all() and (single[..., 1] == 0).all()
    assert np.asarray(Image.open(paths[2])).shape == (16, 32, 3)
    grid = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert grid.shape[0] > 128 and grid.shape[1] >= 2 * 128
    # the caption band under the images holds dark text pixels on white
    band = grid[4 + 128 : 4 + 128 + 20]
    assert (band.min(axis=-1) < 100).any()


def test_preview_to_tensorboard_logs_images():
    logged = []

    class Writer:
        def add_images(self, tag, imgs, step, dataformats):
            logged.append((tag, tuple(imgs.shape), step, dataformats))

    ImagePlugin(fid=False).preview_to_tensorboard(Writer(), [torch.zeros(3, 8, 8)] * 2, 5, "samples")
    assert logged == [("samples", (2, 3, 8, 8), 5, "NCHW")]


def test_fid_orders_sample_sets_by_quality():
    """Real vs held-out real < real vs noisy real < real vs a single combination < real vs noise."""
    from lumina_modalities.image.fid import feature_net, fid_score

    net = feature_net()
    ds = ShapesDataset(length=200, split="val")
    items = [ds[i] for i in range(200)]
    # the feature network knows what it was trained on: held-out attribute accuracy
    x = (torch.stack([it["sample"] for it in items]) + 1) / 2
    pred = net.logits(x)["position"].argmax(1)
    truth = torch.tensor(
        [list(ShapesDataset(length=1).positions).index(it["meta"]["position"]) for it in items]
    )
    assert (pred == truth).float().mean() > 0.9
    real_a = [it["sample"] for it in items[:100]]
    real_b = [it["sample"] for it in items[100:]]
    g = torch.Generator().manual_seed(0)
    noisy = [x + 0.3 * torch.randn(x.shape, generator=g) for x in real_b]
    one_kind = [it["sample"] for it in items[100:] if it["meta"]["color"] == "red"][:20]
    noise = [torch.randn(3, 32, 32, generator=g).clamp(-1, 1) for _ in range(100)]
    scores = [fid_score(s, real_a) for s in (real_b, noisy, one_kind, noise)]
    assert scores == sorted(scores), scores


def test_plugin_evaluate_combines_checker_and_fid():
    ds = ShapesDataset(length=16, split="val")
    items = [ds[i] for i in range(16)]
    metrics = ImagePlugin(patch_size=4).evaluate([it["sample"] for it in items], items, ds)
    assert metrics["adherence"] == 1.0 and "fid" in metrics and np.isfinite(metrics["fid"])

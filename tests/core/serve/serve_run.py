"""A tiny two-task run for the serve tests, trained for real in seconds: text-to-image on procedural shapes
(16x16, 2x2 patches, captions through the test suite's hashed-word text conditioner) and class-conditioned point clouds."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from lumina_core.registry import CONDITIONERS
from lumina_core.testing import HashTextConditioner

CONDITIONERS.register("_serve_hash_text", override=True)(HashTextConditioner)


def tiny_recipe(run_dir: Path):
    return OmegaConf.create(
        {
            "run": {"name": "serve_tiny", "output_dir": str(run_dir), "device": "cpu", "seed": 0},
            "model": {"dim": 32, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "multiple_of": 32},
            "tasks": [
                {
                    "name": "shapes",
                    "modality": {"name": "image", "params": {"patch_size": 2, "channels": 3, "image_size": 16}},
                    "data": {
                        "name": "shapes",
                        "params": {"size": 16, "length": 64, "condition": "text"},
                        "val_params": {"length": 8},
                        "batch_size": 4,
                    },
                    "conditioning": {"encoder": {"name": "_serve_hash_text", "params": {"dim": 32}}},
                    "sampling": {"solver": {"name": "euler"}, "steps": 3, "grid": {"name": "uniform"}, "cfg_scale": 2.0},
                },
                {
                    "name": "clouds",
                    "modality": {"name": "pointcloud", "params": {"num_points": 64}},
                    "data": {
                        "name": "shapes_lite",
                        "params": {"num_items": 32, "num_points": 64, "condition": "class"},
                        "val_params": {"num_items": 8},
                        "batch_size": 4,
                    },
                    "conditioning": {"encoder": {"name": "class", "params": {"num_classes": 8, "dim": 32}}},
                    "sampling": {"solver": {"name": "euler"}, "steps": 3, "grid": {"name": "uniform"}},
                },
            ],
            "train": {
                "max_steps": 2, "lr": 1e-3, "warmup_steps": 1, "ema_decay": 0.9, "log_every": 1,
                "ckpt_every": 2, "preview_every": 0, "threads": 1,
            },
        }
    )  # fmt: skip


def train_tiny(run_dir: Path):
    """Train the tiny recipe into ``run_dir``; return its config."""
    from lumina_core.training.api import train

    cfg = tiny_recipe(run_dir)
    train(cfg)
    return cfg

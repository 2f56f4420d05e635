"""Every shipped recipe builds and takes one training step with ``model.family=unified`` (at tiny sizes): the
unified trunk works with every modality plugin through the existing adapters (tasks with and without RoPE
axes, with text, class or no conditions, several tasks on one trunk)."""

from __future__ import annotations

import pytest
import torch
from fixtures.recipes import recipe_id as _id
from fixtures.recipes import shipped_recipes

from lumina_core.config import load_recipe
from lumina_core.data import collate_items
from lumina_core.training.build import build_run

RECIPES = shipped_recipes()  # the same list test_recipes.py runs

#: a tiny unified trunk (the recipe's conditioners, data and adapters are kept)
TINY_UNIFIED = [
    "model.family=unified", "model.preset=null", "model.dim=128", "model.n_layers=1", "model.n_heads=4",
    "model.n_kv_heads=2", "model.multiple_of=32", "model.n_refiner_layers=1", "model.grad_checkpointing=false",
]
#: what a recipe may need that a test machine does not have (a user's folder, downloaded weights)
NEEDS_USER_FILES = ("needs `path`", "does not exist", "No such file", "not found", "local_files_only", "offline")


@pytest.mark.parametrize("item", RECIPES, ids=_id)
def test_recipe_takes_a_training_step_with_the_unified_family(item):
    path, _ = item
    torch.manual_seed(0)
    try:
        parts = build_run(load_recipe(path, TINY_UNIFIED))
        batches = {}
        for name, task in parts.tasks.items():
            ds = task.dataset("train")
            batches[name] = collate_items([ds[i] for i in range(min(2, len(ds)))])
    except (ValueError, FileNotFoundError, OSError) as err:
        if any(s in str(err) for s in NEEDS_USER_FILES):
            pytest.skip(f"{path.name}: {err}")
        raise
    model = parts.model
    assert model.config.family == "unified" and type(model.trunk).__name__ == "UnifiedNextDiT"
    g = torch.Generator().manual_seed(0)
    total = sum(task.loss(model, batches[name], g) for name, task in parts.tasks.items())
    assert torch.isfinite(total)
    total.backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert any(k.startswith("trunk.layers.") for k in grads) and all(torch.isfinite(v).all() for v in grads.values())
    before = model.trunk.layers[0].attention.wqkv.weight.detach().clone()
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    assert not torch.equal(before, model.trunk.layers[0].attention.wqkv.weight)

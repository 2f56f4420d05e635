"""train.optimizer: torch's AdamW by default; bitsandbytes' 8-bit AdamW only where it can run, otherwise a clear
error at validation and at build time that names the package."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lumina_core.finetune.optim import OPTIMIZERS, build_optimizer, optimizer_problem

HAVE_BNB = importlib.util.find_spec("bitsandbytes") is not None


def test_adamw_is_torchs_with_the_recipe_settings():
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer("adamw", [p], 1e-3, (0.8, 0.95), 0.01, "cpu")
    assert type(opt) is torch.optim.AdamW
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-3, (0.8, 0.95), 0.01)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.all(p < 1)  # it steps


def test_problems_name_the_package_the_device_or_the_choices():
    assert optimizer_problem("adamw", "cpu") is None
    assert "adamw, adamw8bit, paged_adamw8bit" in optimizer_problem("adam8bit")
    missing = optimizer_problem("adamw8bit", "cuda", installed=False)
    assert "bitsandbytes" in missing and "pip install bitsandbytes" in missing
    on_cpu = optimizer_problem("paged_adamw8bit", "cpu", installed=True)
    assert "CUDA GPUs only" in on_cpu and "'cpu'" in on_cpu
    assert optimizer_problem("adamw8bit", "auto", installed=True) is None


@pytest.mark.skipif(HAVE_BNB and torch.cuda.is_available(), reason="8-bit AdamW can run here")
@pytest.mark.parametrize("name", ["adamw8bit", "paged_adamw8bit"])
def test_8bit_without_bitsandbytes_or_a_gpu_is_refused_naming_the_package(name):
    with pytest.raises(ValueError, match="bitsandbytes"):
        build_optimizer(name, [torch.nn.Parameter(torch.ones(2))], 1e-3, (0.9, 0.999), 0.0, "auto")


def test_validation_reports_the_optimizer(tmp_path):
    from lumina_core.config.buildcheck import check_buildable

    problems: list[str] = []
    check_buildable({"run": {"device": "cpu"}, "train": {"optimizer": "adamw8bit"}}, problems)
    assert any(p.startswith("train.optimizer:") and "bitsandbytes" in p for p in problems), problems
    problems = []
    check_buildable({"run": {"device": "cpu"}, "train": {"optimizer": "adamw"}}, problems)
    assert not any(p.startswith("train.optimizer") for p in problems)


@pytest.mark.skipif(not (HAVE_BNB and torch.cuda.is_available()), reason="needs bitsandbytes and a CUDA GPU")
@pytest.mark.parametrize("name", ["adamw8bit", "paged_adamw8bit"])
def test_8bit_adamw_follows_torchs_adamw_on_a_gpu(name):
    """Block-wise 8-bit states: the same steps as fp32 AdamW up to the quantisation of the moments."""
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(64, 4096, generator=g)  # >= 4096 values: bitsandbytes keeps smaller tensors in 32 bits
    a, b = torch.nn.Parameter(w0.cuda()), torch.nn.Parameter(w0.cuda())
    ref, eight = build_optimizer("adamw", [a], 1e-3, (0.9, 0.999), 0.0), build_optimizer(name, [b], 1e-3, (0.9, 0.999), 0.0)
    assert type(eight).__module__.startswith("bitsandbytes") and OPTIMIZERS[name][1] == type(eight).__name__
    for _ in range(5):
        grad = torch.randn(w0.shape, generator=g).cuda()
        a.grad, b.grad = grad.clone(), grad.clone()
        ref.step()
        eight.step()
    step_ref, step_8 = (a - w0.cuda()), (b - w0.cuda())
    cos = torch.nn.functional.cosine_similarity(step_ref.flatten(), step_8.flatten(), dim=0)
    assert cos > 0.99 and (step_8.norm() / step_ref.norm() - 1).abs() < 0.05

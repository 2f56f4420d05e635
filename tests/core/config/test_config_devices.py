"""A ``run.device`` this machine lacks (``cuda`` without a GPU, ``cuda:7`` on a one-GPU machine, ``mps`` off a
Mac) or a name that is no device (``gpu``): ``config validate`` lists it with the other problems in one line
suggesting ``run.device=cpu``, and ``train``, ``sample``, ``eval`` and ``serve`` refuse it in one paragraph with
exit status 2 before anything is built or written. The machine is pinned by monkeypatching torch's own probes,
so the tests mean the same on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli.main import main
from lumina_core.config.devices import DeviceUnavailable
from lumina_core.training.api import train

ROOT = Path(__file__).resolve().parents[3]


def gpus(monkeypatch, count: int, mps: bool = False) -> None:
    """Pretend this machine has ``count`` CUDA GPUs (and Apple's GPU or not)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.fixture
def recipe(tmp_path):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality for the commands)

    path = tmp_path / "toy.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", max_steps=2), path)
    return path


@pytest.mark.parametrize(
    ("device", "count", "said"),
    [
        ("cuda", 0, "torch sees no CUDA GPU"),
        ("cuda:0", 0, "torch sees no CUDA GPU"),
        ("cuda:7", 1, "has 1 CUDA GPU(s), numbered 0 to 0"),
        ("mps", 0, "'mps' (Apple's GPU) is not available"),
        ("gpu", 1, "expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got 'gpu'"),
    ],
)
def test_config_validate_lists_a_device_this_machine_lacks(recipe, monkeypatch, capsys, device, count, said):
    gpus(monkeypatch, count)
    code = main(["config", "validate", str(recipe), f"run.device={device}", "train.precision=fp16"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert said in err and "run.device=" in err  # what to use instead
    assert "train.precision" in err and "2 problems" in err  # listed with the recipe's other problems
    assert len([line for line in err.splitlines() if "run.device:" in line]) == 1


@pytest.mark.parametrize("command", ["train", "sample", "eval", "serve"])
def test_commands_refuse_cuda_without_a_gpu_in_one_paragraph(recipe, tmp_path, monkeypatch, capsys, command):
    gpus(monkeypatch, 0)
    extra = ["--ckpt", "last"] if command in ("sample", "serve") else []
    code = main([command, str(recipe), "run.device=cuda", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and f"lumina {command}: error: run.device: 'cuda'" in err
    assert "run.device=cpu" in err
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


def test_train_refuses_mps_off_a_mac_and_too_many_gpus(recipe, tmp_path, monkeypatch, capsys):
    gpus(monkeypatch, 1)
    assert main(["train", str(recipe), "run.device=mps"]) == 2
    assert "'mps' (Apple's GPU) is not available" in capsys.readouterr().err
    assert main(["train", str(recipe), "run.device=cuda", "train.devices=2"]) == 2
    assert "needs 2 CUDA GPUs, but this machine has 1" in capsys.readouterr().err
    with pytest.raises(DeviceUnavailable):  # the Python API refuses it the same way
        train(OmegaConf.merge(tiny_recipe(tmp_path / "run", max_steps=2), {"run": {"device": "cuda:3"}}))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name", ["image/finetune_folder.yaml", "image/finetune_folder_lora.yaml", "image/lumina_next_2b.yaml"]
)
def test_the_gpu_recipes_take_the_gpu_when_there_is_one_else_the_cpu(name):
    """They say ``auto``: validated on this machine whatever it has; ``cuda`` is for a user who insists."""
    assert OmegaConf.load(ROOT / "recipes" / name).run.device == "auto"


def test_auto_on_a_machine_without_a_gpu_is_validated_as_the_cpu(monkeypatch):
    """``auto`` takes the CPU here, so an 8-bit optimiser (CUDA only) is refused at validation, not at step 1."""
    import importlib.util

    from lumina_core.config.buildcheck import check_buildable

    gpus(monkeypatch, 0)
    find_spec = importlib.util.find_spec  # bitsandbytes "installed", so only the device can be the problem
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else find_spec(n, *a))
    problems: list[str] = []
    check_buildable({"run": {"device": "auto"}, "train": {"optimizer": "adamw8bit"}}, problems)
    assert any(p.startswith("train.optimizer:") and "CUDA GPUs only" in p for p in problems), problems
    assert not any(p.startswith("run.device") for p in problems)

"""LoRA scales and weights that would give NaN: refused before anything is read, sampled or written
(issue 27: ``--lora ADAPTER:nan`` exited 0 with black images, ``lora merge`` wrote NaN tensors)."""

from __future__ import annotations

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli.main import main
from lumina_core.finetune import (
    LoraSettings,
    adapter_parameters,
    apply_lora,
    merge_adapter_into,
    parse_adapter_arg,
    save_adapter,
)
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.training import checkpoint as ck

pytest.importorskip("peft")
SPEC = AdapterSpec(in_dim=16, out_dim=16, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))
CFG = NextDiTConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12)
TEXT_RECIPE = "recipes/image/shapes_tiny.yaml"


def _random_adapter(model, path):
    settings = LoraSettings(rank=2, alpha=4)
    apply_lora(model, settings)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in adapter_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return save_adapter(path, model, settings)


@pytest.fixture
def adapter(tmp_path):
    torch.manual_seed(0)
    return _random_adapter(LuminaModel(CFG, {"image": SPEC}), tmp_path / "adapter.safetensors")


@pytest.mark.parametrize("scale", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_non_finite_scales_are_refused_when_parsed(scale):
    with pytest.raises(ValueError, match="not a finite number"):
        parse_adapter_arg(f"runs/x/adapter.safetensors:{scale}")


def test_a_scale_that_is_not_a_number_says_so(adapter):
    for path in (str(adapter), "missing/adapter.safetensors"):
        with pytest.raises(ValueError, match=r"the scale 'abc' after the last ':' is not a number.*ADAPTER\[:SCALE\]"):
            parse_adapter_arg(f"{path}:abc")
    assert parse_adapter_arg(f"{adapter}:-0.5") == (str(adapter), -0.5)
    assert parse_adapter_arg("C:/x/lora.safetensors") == ("C:/x/lora.safetensors", 1.0)


@pytest.mark.parametrize("scale,says", [("nan", "not a finite number"), ("abc", "is not a number")])
def test_sample_with_a_bad_scale_is_one_paragraph(adapter, scale, says, capsys):
    code = main(["sample", TEXT_RECIPE, "--ckpt", "last", "--lora", f"{adapter}:{scale}", "--prompt", "a"])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
    assert "no LoRA adapter file" not in err


def test_merge_with_a_non_finite_scale_writes_nothing(adapter, tmp_path, capsys):
    torch.manual_seed(0)
    weights = {"model." + k: v for k, v in LuminaModel(CFG, {"image": SPEC}).state_dict().items()}
    base = ck.save_checkpoint(tmp_path / "run" / "checkpoints", 3, weights, None, {"step": 3})
    out = tmp_path / "merged"
    code = main(["lora", "merge", str(base), f"{adapter}:inf", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "not a finite number" in err and not out.exists()


def test_an_update_that_overflows_the_weights_is_refused_naming_the_tensor(adapter):
    torch.manual_seed(0)
    weights = {k: v.half() for k, v in LuminaModel(CFG, {"image": SPEC}).state_dict().items()}
    with pytest.raises(ValueError, match=r"makes trunk\.layers\.\d\.\S+ non-finite"):
        merge_adapter_into(weights, adapter, 1e30)


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    weights = {"model.a": torch.ones(3), "model.b": torch.tensor([1.0, float("nan")])}
    with pytest.raises(ck.CheckpointError, match=r"non-finite weights .* model:model\.b"):
        ck.save_checkpoint(tmp_path / "ckpts", 1, weights, None, {"step": 1})
    ema = {"model.a": torch.tensor([float("inf"), 0, 0]), "model.b": torch.ones(2)}
    with pytest.raises(ck.CheckpointError, match=r"ema:model\.a"):
        ck.save_checkpoint(tmp_path / "ckpts", 1, {"model.a": torch.ones(3)}, ema, {"step": 1})
    assert not any((tmp_path / "ckpts").glob("*step*"))


def test_sampling_with_a_huge_finite_scale_stops_instead_of_writing_black_files(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality)

    from lumina_core.training.api import load_run, train

    cfg = tiny_recipe(tmp_path / "run", max_steps=2)
    train(cfg)
    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(cfg, recipe)
    path = _random_adapter(load_run(cfg).model, tmp_path / "toy_adapter.safetensors")
    out = tmp_path / "samples"
    capsys.readouterr()  # the training's own output is not the command's
    code = main(["sample", str(recipe), "--ckpt", "last", "--class", "1", "--num", "2", "--out", str(out),
                 "--lora", f"{path}:1e30"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "non-finite" in err and "LoRA scale" in err and "Traceback" not in err
    assert not list(out.glob("*.csv"))
    # the library call refuses the same; training previews ask for the samples as they are (the run's own
    # non-finite checks decide whether it stops, not a preview)
    run = load_run(cfg)
    with torch.no_grad():
        next(iter(run.model.parameters())).fill_(float("nan"))
    task = run.task("seq")
    with pytest.raises(ValueError, match="came out non-finite"):
        task.generate(run.model, [1, 2])
    samples = task.generate(run.model, [1, 2], refuse_nonfinite=False)
    assert len(samples) == 2 and not torch.isfinite(samples[0]).all()

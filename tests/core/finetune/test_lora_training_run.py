"""`train.lora` in a real run: LoRA on a trained base (train.init_from), adapter-only checkpoints, exact resume,
and sampling from the adapted run."""

from __future__ import annotations

import re

import pytest
import torch
from fixtures.toy_plugin import tiny_recipe

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import load_run, train

LORA = {"rank": 2, "alpha": 4.0}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "base"
    train(tiny_recipe(out, max_steps=3, ckpt_every=3))
    return out / "checkpoints" / "step_0000003"


def lora_recipe(out, base_ck, steps, **train_cfg):
    return tiny_recipe(
        out,
        max_steps=steps,
        ckpt_every=2,
        init_from=str(base_ck),
        lr_schedule="constant",
        **{"lora": LORA, **train_cfg},
    )


FACTORS_ONLY = {**LORA, "train_also": []}


@pytest.fixture(scope="module")
def lora_run(base, tmp_path_factory):
    """A 2-step LoRA run on ``base`` with the default settings, trained once for the tests that only read it."""
    return train(lora_recipe(tmp_path_factory.mktemp("lora_run") / "ft", base, 2))


@pytest.fixture(scope="module")
def factors_only_run(base, tmp_path_factory):
    """A 2-step factors-only LoRA run (``train_also: []``), trained once for the tests that only read it."""
    return train(lora_recipe(tmp_path_factory.mktemp("factors_only") / "old", base, 2, lora=FACTORS_ONLY))


def test_lora_run_saves_the_adapter_only_and_leaves_the_base_frozen(base, tmp_path):
    run = train(lora_recipe(tmp_path / "ft", base, 4))
    w = ckpt_io.load_weights(run / "checkpoints" / "step_0000004", "model")
    # the factors, and the task adapter (train.lora.train_also's default), trained in full
    assert w and all(".lora_A." in k or ".lora_B." in k or k.startswith("model.adapters.seq.") for k in w)
    assert "model.adapters.seq.final_layer.linear.weight" in w
    assert any(".lora_B." in k and v.abs().sum() > 0 for k, v in w.items())  # the adapter trained
    base_w = ckpt_io.load_weights(base, "ema")
    tuned = load_run(lora_recipe(tmp_path / "ft", base, 4), "last")  # base + merged adapter
    plain = load_run(tiny_recipe(tmp_path / "plain", max_steps=3), base)
    changed = [
        k for k, v in tuned.model.state_dict().items() if not torch.equal(v, plain.model.state_dict()[k])
    ]
    # what the default targets adapt: the blocks' projections and (train.lora.adapt_conditioning) their adaLN
    # modulation and the caption embedder's projection; nothing else of the trunk moved
    adapted = re.compile(r"(\.(wqkv|wo|w13|w2|wq_y|wkv_y)|layers\.\d+\.adaLN_modulation\.1|cap_embedder\.net\.1)\.weight$")
    assert changed and all(adapted.search(k) or k.startswith("adapters.seq.") for k in changed), changed
    assert any("adaLN_modulation" in k for k in changed) and any("cap_embedder" in k for k in changed), changed
    assert set(f"model.{k}" for k in tuned.model.state_dict()) == {
        k for k in base_w if k.startswith("model.")
    }
    cls = tuned.conditioners["seq"].table.weight
    torch.testing.assert_close(cls, base_w["conditioners.seq.table.weight"], rtol=0, atol=0)  # frozen


def test_lora_run_resumes_exactly(base, tmp_path):
    straight = train(lora_recipe(tmp_path / "a", base, 4))
    train(lora_recipe(tmp_path / "b", base, 2))
    resumed = train(lora_recipe(tmp_path / "b", base, 4), resume="last")
    a = ckpt_io.load_weights(straight / "checkpoints" / "step_0000004", "model")
    b = ckpt_io.load_weights(resumed / "checkpoints" / "step_0000004", "model")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_targets_that_match_nothing_are_named(base, tmp_path):
    cfg = tiny_recipe(
        tmp_path / "c", max_steps=1, init_from=str(base), lora={"rank": 2, "targets": ["nothing_here"]}
    )
    with pytest.raises(ValueError, match="match no linear layer"):
        train(cfg)


def test_sample_with_the_runs_adapter_file_and_a_scale(base, tmp_path):
    from lumina_core.training.api import sample

    run = train(lora_recipe(tmp_path / "ft", base, 2, lr=0.05, ema_decay=0.0))  # a visible change in 2 steps
    adapter = run / "lora" / "adapter.safetensors"
    assert adapter.is_file()
    plain_cfg = tiny_recipe(tmp_path / "plain", max_steps=3)

    def csv(out, **kw):
        paths = sample(plain_cfg, base, [1], 1, tmp_path / out, **kw)
        return [p.read_text() for p in paths if p.suffix == ".csv"]

    without, zero, full = csv("a"), csv("b", lora=[(adapter, 0.0)]), csv("c", lora=[(adapter, 1.0)])
    assert without == zero and without != full  # scale 0 is the base, scale 1 the adapted model
    tuned = sample(
        lora_recipe(tmp_path / "ft", base, 2, lr=0.05, ema_decay=0.0), "last", [1], 1, tmp_path / "d"
    )
    # the run itself samples the same, up to the CSV's 4 decimals: the file's factors are merged in another order
    # than the run's, so a value on a rounding boundary may print one unit apart (seen on an AMD EPYC)
    got = [p.read_text() for p in tuned if p.suffix == ".csv"]

    def values(texts):
        return torch.tensor([float(v) for t in texts for line in t.splitlines() for v in line.split(",")])

    assert len(got) == len(full)
    torch.testing.assert_close(values(got), values(full), rtol=0, atol=1.5e-4)
    assert not torch.allclose(values(got), values(without), rtol=0, atol=1e-3)  # and not the base


def test_factors_only_when_train_also_is_empty(factors_only_run):
    w = ckpt_io.load_weights(factors_only_run / "checkpoints" / "step_0000002", "model")
    assert w and all(".lora_A." in k or ".lora_B." in k for k in w)


def test_sampling_a_lora_run_with_the_plain_recipe_says_how(base, lora_run, tmp_path, capsys):
    """The recipe the run started from, without its train.lora: one paragraph naming both ways, exit 2 (it
    listed every base weight as missing before)."""
    from omegaconf import OmegaConf

    from lumina_core.cli.main import main

    run = lora_run
    plain = tmp_path / "plain.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "plain", max_steps=3), plain)
    code = main(["sample", str(plain), "--ckpt", str(run), "--num", "1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "is a checkpoint of a LoRA run" in err and "missing from the checkpoint" not in err
    assert f"lumina sample {run}/config.yaml" in err
    assert f"--ckpt {base} --lora {run}/lora/adapter.safetensors" in err
    # and the two ways it names work
    assert main(["sample", str(run / "config.yaml"), "--ckpt", str(run), "--num", "1",
                 "--out", str(tmp_path / "a")]) == 0
    adapter = str(run / "lora" / "adapter.safetensors")
    assert main(["sample", str(plain), "--ckpt", str(base), "--lora", adapter, "--num", "1",
                 "--out", str(tmp_path / "b")]) == 0


def test_a_lora_recipe_without_its_base_is_refused(base, lora_run):
    from lumina_core.training.checkpoint import CheckpointError

    no_base = tiny_recipe(lora_run, max_steps=2, lora=LORA)
    with pytest.raises(CheckpointError, match=f"no train.init_from.*train.init_from={base}"):
        load_run(no_base, lora_run)


def test_a_run_from_before_train_also_still_loads_with_the_default(base, factors_only_run):
    """A factors-only checkpoint (what every LoRA run wrote before train_also) and a recipe that leaves
    train_also at its default: the task adapter stays as the base has it."""
    factors_only = lora_recipe(factors_only_run, base, 2, lora=FACTORS_ONLY)
    default = lora_recipe(factors_only_run, base, 2)
    a, b = load_run(factors_only, "last").model.state_dict(), load_run(default, "last").model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_from_before_adapt_conditioning_samples_with_its_own_config(base, tmp_path):
    """A LoRA run recorded before ``train.lora.adapt_conditioning`` existed adapted the blocks' projections only;
    loaded with its own config.yaml (which lacks the key, so today's default, True, fills it) or with the
    recipe it was started from, it loads the modules it trained, as the same run with the key set to false."""
    import json

    from omegaconf import OmegaConf

    old = {**LORA, "adapt_conditioning": False}
    run = train(lora_recipe(tmp_path / "old", base, 2, lora=old))
    ck = run / "checkpoints" / "step_0000002"
    for meta_file in (run / "checkpoints").glob("step_*/meta.json"):  # as written before the key existed
        meta = json.loads(meta_file.read_text())
        del meta["recipe"]["train"]["lora"]["adapt_conditioning"]
        meta_file.write_text(json.dumps(meta))
    config = OmegaConf.load(run / "config.yaml")
    del config.train.lora["adapt_conditioning"]
    OmegaConf.save(config, run / "config.yaml")

    expected = load_run(lora_recipe(run, base, 2, lora=old), ck).model.state_dict()
    for recipe in (OmegaConf.load(run / "config.yaml"), lora_recipe(run, base, 2)):  # the key absent: default
        got = load_run(recipe, ck).model.state_dict()
        assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in got)
    assert not any("adaLN_modulation" in k and "lora" in k for k in expected)  # merged: plain module names

"""`train.lora` in a real run: LoRA on a trained base (train.init_from), adapter-only checkpoints, exact resume,
and sampling from the adapted run."""

from __future__ import annotations

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
        lora=LORA,
        lr_schedule="constant",
        **train_cfg,
    )


def test_lora_run_saves_the_adapter_only_and_leaves_the_base_frozen(base, tmp_path):
    run = train(lora_recipe(tmp_path / "ft", base, 4))
    w = ckpt_io.load_weights(run / "checkpoints" / "step_0000004", "model")
    assert w and all(".lora_A." in k or ".lora_B." in k for k in w)
    assert any(".lora_B." in k and v.abs().sum() > 0 for k, v in w.items())  # the adapter trained
    base_w = ckpt_io.load_weights(base, "ema")
    tuned = load_run(lora_recipe(tmp_path / "ft", base, 4), "last")  # base + merged adapter
    plain = load_run(tiny_recipe(tmp_path / "plain", max_steps=3), base)
    changed = [
        k for k, v in tuned.model.state_dict().items() if not torch.equal(v, plain.model.state_dict()[k])
    ]
    assert changed and all(
        k.split(".")[-2] in ("wqkv", "wo", "w13", "w2", "wq_y", "wkv_y") for k in changed
    ), changed
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
    assert [p.read_text() for p in tuned if p.suffix == ".csv"] == full  # the run itself samples the same

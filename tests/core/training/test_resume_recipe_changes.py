"""``--resume`` with a changed recipe: what changed is said, a change that alters the training steps is refused
unless asked (``--allow-changes``), and the earlier ``config.yaml`` is kept beside the new one."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fixtures.toy_plugin import seq_task, tiny_recipe
from omegaconf import OmegaConf

from lumina_core.cli.main import main
from lumina_core.config.typed import typed_recipe
from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import RecipeChangedError, train
from lumina_core.training.recipe_changes import changes, flatten

TWO_TASKS = [seq_task("a"), seq_task("b", conditioned=False)]


def _snapshot(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir()), (run / "config.yaml").read_text()


def test_resume_with_changed_training_keys_is_refused_naming_them_and_nothing_moves(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, TWO_TASKS, max_steps=2))
    before = _snapshot(out)
    changed = tiny_recipe(out, TWO_TASKS, max_steps=4, mixing="weighted")
    changed.run.seed = 2
    with pytest.raises(RecipeChangedError) as err:
        train(changed, resume="last")
    msg = str(err.value)
    assert 'train.mixing: "all" -> "weighted"' in msg and "run.seed: 0 -> 2" in msg
    assert "--allow-changes" in msg and "max_steps" not in msg  # only the keys that change the steps
    assert _snapshot(out) == before  # config.yaml still the run's, no step trained


def test_resume_that_only_extends_the_run_says_so_and_goes_on(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2, log_every=1))
    train(tiny_recipe(out, max_steps=4, log_every=2, preview_every=2), resume="last")
    said = capsys.readouterr().out
    assert "the recipe changed since that checkpoint: train.log_every: 1 -> 2; train.max_steps: 2 -> 4" in said
    assert json.loads((out / "checkpoints" / "step_0000004" / "meta.json").read_text())["step"] == 4
    assert not list(out.glob("config.before-*"))  # nothing that trains differently to keep


def test_allow_changes_continues_and_keeps_the_earlier_config_beside_the_new_one(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2, lr=1e-3))
    train(tiny_recipe(out, max_steps=4, lr=5e-4), resume="last", allow_changes=True)
    assert "train.lr: 0.001 -> 0.0005" in capsys.readouterr().out
    kept = out / "config.before-step_0000002.yaml"
    assert OmegaConf.load(kept).train.lr == 1e-3 and OmegaConf.load(out / "config.yaml").train.lr == 5e-4
    # the new checkpoints record the recipe they were trained with: resuming them with it is no change
    train(tiny_recipe(out, max_steps=6, lr=5e-4), resume="last")
    assert ckpt_io.resolve_checkpoint("last", out).name == "step_0000006"
    with pytest.raises(ValueError, match="--allow-changes is for --resume"):
        train(tiny_recipe(tmp_path / "new", max_steps=2), allow_changes=True)


def test_a_checkpoint_without_a_recorded_recipe_is_compared_with_its_run_config(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    meta = out / "checkpoints" / "step_0000002" / "meta.json"
    record = json.loads(meta.read_text())
    del record["recipe"]  # as checkpoints were written before they recorded it
    meta.write_text(json.dumps(record))
    with pytest.raises(RecipeChangedError, match=r"config\.yaml.*train\.grad_clip: 2\.0 -> 0\.5"):
        train(tiny_recipe(out, max_steps=4, grad_clip=0.5), resume="last")


def test_a_key_added_to_the_schema_since_the_checkpoint_is_no_change(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(out, max_steps=2))
    meta = out / "checkpoints" / "step_0000002" / "meta.json"
    record = json.loads(meta.read_text())
    del record["recipe"]["train"]["threads"], record["recipe"]["tasks"][0]["sampling"]["precision"]
    meta.write_text(json.dumps(record))  # as a checkpoint from before those keys existed
    train(tiny_recipe(out, max_steps=3), resume="last")  # their defaults are what it trained with
    assert ckpt_io.resolve_checkpoint("last", out).name == "step_0000003"


def test_lumina_train_resume_with_a_changed_key_exits_2_and_allow_changes_goes_on(tmp_path, capsys):
    import fixtures.toy_plugin  # noqa: F401  (registers the toy modality for the command)

    out = tmp_path / "run"
    recipe = tmp_path / "toy.yaml"
    OmegaConf.save(tiny_recipe(out, max_steps=2), recipe)
    assert main(["train", str(recipe)]) == 0
    assert main(["train", str(recipe), "--resume", "last", "train.max_steps=3", "train.weight_decay=0.1"]) == 2
    err = capsys.readouterr().err
    assert "train.weight_decay: 0.0 -> 0.1" in err and "Traceback" not in err
    assert main(["train", str(recipe), "--resume", "last", "train.max_steps=3", "train.weight_decay=0.1",
                 "--allow-changes"]) == 0  # fmt: skip
    assert (out / "config.before-step_0000002.yaml").is_file()


def test_recipes_compare_by_value_with_defaults_filled_in():
    a = tiny_recipe("runs/x", TWO_TASKS)
    b = tiny_recipe("runs/x", TWO_TASKS)
    b.train.lr = 1e-3  # the value tiny_recipe already sets: no change
    b.train.weight_decay = 0.0  # the schema's default written out: no change
    assert changes(typed_recipe(a), typed_recipe(b)) == []
    b.tasks[1].data.batch_size = 3
    b.train.betas = (0.9, 0.99)
    found = {str(c): c.breaks_exact_resume for c in changes(typed_recipe(a), typed_recipe(b))}
    assert found == {"tasks.1.data.batch_size: 6 -> 3": True, "train.betas: [0.9, 0.999] -> [0.9, 0.99]": True}
    b.tasks[0].sampling.steps = 8
    assert [c.breaks_exact_resume for c in changes(typed_recipe(a), typed_recipe(b)) if "sampling" in c.key] == [False]
    assert flatten({"p": {}, "l": [{"x": 1}], "v": [1, 2]}) == {"p": {}, "l.0.x": 1, "v": [1, 2]}


def test_a_trunk_default_recorded_before_it_became_null_is_no_change():
    """Recipes recorded while the schema wrote ``model.family: next_dit`` (and the refiner / RoPE / variant
    defaults) out are the same run as today's ``null`` (the preset's, else the trunk's default)."""
    today = typed_recipe(tiny_recipe("runs/x", TWO_TASKS))
    recorded = json.loads(json.dumps(dataclasses.asdict(today)))
    recorded["model"].update(family="next_dit", n_refiner_layers=2, caption_rope_fraction=1 / 3, unified_variant="lumina2")
    assert changes(recorded, today) == []
    recorded["model"]["family"] = "unified"
    assert [str(c) for c in changes(recorded, today)] == ['model.family: "unified" -> "next_dit"']  # the value in effect
    preset = json.loads(json.dumps(dataclasses.asdict(today)))
    preset["model"]["preset"] = "lumina2"
    assert changes(recorded | {"model": {**recorded["model"], "preset": "lumina2"}}, preset) == []  # lumina2: unified


def test_a_lora_run_recorded_before_lr_ratio_existed_reads_as_the_one_rate_it_trained_with(tmp_path):
    """``train.lora.lr_ratio`` came with a default of 16 (LoRA+); a run recorded without the key trained every
    factor at one rate, so its recorded recipe reads 1.0: resuming with ``train.lora.lr_ratio=1`` is no change,
    and today's default is named as the change it is."""
    from lumina_core.training.recipe_changes import recorded_recipe

    recipe = OmegaConf.to_container(tiny_recipe(tmp_path / "run"), resolve=True)
    recipe["train"]["lora"] = {"rank": 4, "alpha": 4.0}  # as recorded before lr / lr_ratio existed
    run = tmp_path / "run"
    ck = run / "checkpoints" / "step_0000002"
    ck.mkdir(parents=True)
    (ck / "meta.json").write_text(json.dumps({"step": 2, "recipe": recipe}))
    recorded, where = recorded_recipe(ck)
    assert where.endswith("meta.json") and recorded.train.lora.lr_ratio == 1.0
    now = typed_recipe({**recipe, "train": {**recipe["train"], "lora": {"rank": 4, "alpha": 4.0}}})
    assert sorted(str(c) for c in changes(recorded, now)) == [
        "train.lora.adapt_conditioning: false -> true",
        "train.lora.lr_ratio: 1.0 -> 16.0",
    ]
    now.train.lora.lr_ratio = 1.0
    now.train.lora.adapt_conditioning = False
    assert changes(recorded, now) == []
    # the same when only the run's config.yaml says what it trained with
    (ck / "meta.json").write_text(json.dumps({"step": 2}))
    OmegaConf.save(OmegaConf.create(recipe), run / "config.yaml")
    recorded, where = recorded_recipe(ck)
    assert where.endswith("config.yaml") and recorded.train.lora.lr_ratio == 1.0
    assert recorded.train.lora.adapt_conditioning is False  # the blocks' projections only, as it trained
    # a run without LoRA is left alone
    recipe["train"]["lora"] = None
    (ck / "meta.json").write_text(json.dumps({"step": 2, "recipe": recipe}))
    assert recorded_recipe(ck)[0].train.lora is None

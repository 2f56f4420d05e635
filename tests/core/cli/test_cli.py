"""The `lumina` command: fast start-up, friendly errors, and every command wired to the library."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from fixtures.stubs import ValidationOnlyDataset, ValidationOnlyPlugin
from omegaconf import OmegaConf

from lumina_core.cli.main import EXIT_USER_ERROR, main
from lumina_core.registry import DATASETS, MODALITIES

ROOT = Path(__file__).resolve().parents[3]


@MODALITIES.register("_cli_seq", override=True)
class CliSeq(ValidationOnlyPlugin):
    name = "_cli_seq"
    conditions = frozenset({"class", "text", "none"})

    def __init__(self, channels: int = 1) -> None:
        self.channels = channels


@DATASETS.register("_cli_data", override=True)
class CliData(ValidationOnlyDataset):
    modality = "_cli_seq"

    def __init__(self, size: int = 4, split: str = "train") -> None:
        self.size = size


RECIPE = """\
# Run: lumina train recipes/test/cli.yaml
run: {name: cli}
model: {dim: 32, n_layers: 1, n_heads: 2}
tasks:
  - name: seq
    modality: {name: _cli_seq}
    data: {name: _cli_data, batch_size: 2}
train: {max_steps: 3}
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "cli.yaml"
    path.write_text(RECIPE)
    return path


# -- start-up ------------------------------------------------------------------------------------------------
def test_help_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys
        import lumina_core.config, lumina_core.registry  # noqa: E401 - cheap to import as well
        from lumina_core.cli.main import main
        for argv in (["--help"], ["train", "--help"], ["sample", "--help"], ["plugins", "list", "--no-load"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "omegaconf", "numpy", "lightning"))
        print("HEAVY", heavy)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    assert "usage: lumina" in out.stdout


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    listed = set(re.findall(r"^    (\w+)  ", capsys.readouterr().out, flags=re.MULTILINE))  # "    NAME  help"
    assert listed == {"train", "sample", "eval", "predict", "serve", "plugins", "config", "convert", "data", "lora"}


# -- config ----------------------------------------------------------------------------------------------------
def test_config_validate_ok(recipe, capsys):
    assert main(["config", "validate", str(recipe)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_config_validate_reports_all_problems_and_exits_2(recipe, capsys):
    rc = main(["config", "validate", str(recipe), "train.max_step=3", "tasks.0.modality.name=_cli_sek"])
    assert rc == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "2 problems" in err and "did you mean 'max_steps'" in err and "did you mean '_cli_seq'" in err
    assert "Traceback" not in err and "--debug" in err


def test_debug_flag_shows_the_exception(recipe):
    from lumina_core.config import RecipeError

    with pytest.raises(RecipeError):
        main(["--debug", "config", "validate", str(recipe), "train.max_step=3"])


def test_config_show_prints_resolved_yaml_with_overrides(recipe, capsys):
    assert main(["config", "show", str(recipe), "run.name=shown", "tasks.0.data.batch_size=5"]) == 0
    text = capsys.readouterr().out
    cfg = OmegaConf.create(text.split("\n", 1)[1])
    assert cfg.run.output_dir == "runs/shown"  # resolved
    assert cfg.tasks[0].data.batch_size == 5
    assert cfg.train.lr == 1e-4  # schema default filled in


def test_override_that_is_not_yaml_is_a_clean_error(recipe, capsys):
    rc = main(["config", "show", str(recipe), "tasks.0.data.batch_size=[", "train.max_step=1"])
    assert rc == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "override 'tasks.0.data.batch_size=[': the value is not valid YAML" in err
    assert "2 problems" in err and "Traceback" not in err


def test_unrecognized_arguments_are_argparse_errors(recipe):
    with pytest.raises(SystemExit) as exc:
        main(["config", "validate", str(recipe), "--bogus"])
    assert exc.value.code == 2


def test_a_bug_keeps_its_traceback(recipe, fake_api, monkeypatch):
    api = sys.modules["lumina_core.training.api"]  # the fake installed by fake_api
    monkeypatch.setattr(api, "train", lambda cfg, resume=None, overwrite=False, allow_changes=False: {}["oops"])  # a KeyError from a bug
    with pytest.raises(KeyError):
        main(["train", str(recipe)])


def test_unknown_registered_name_is_a_clean_error(recipe, fake_api, monkeypatch, capsys):
    from lumina_core.registry import SOLVERS

    api = sys.modules["lumina_core.training.api"]
    monkeypatch.setattr(api, "train", lambda cfg, resume=None, overwrite=False, allow_changes=False: SOLVERS.get("eulr"))
    assert main(["train", str(recipe)]) == EXIT_USER_ERROR
    assert "unknown solver 'eulr'" in capsys.readouterr().err


def test_missing_recipe_is_a_clean_error(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == EXIT_USER_ERROR
    assert "not found" in capsys.readouterr().err


# -- train / sample / eval / convert / data: wired to the library -------------------------------------------------
@pytest.fixture
def fake_api(monkeypatch):
    calls: dict[str, tuple] = {}
    api = types.ModuleType("lumina_core.training.api")

    def train(cfg, resume=None, overwrite=False, allow_changes=False):
        calls["train"] = (cfg, resume)
        calls["allow_changes"] = allow_changes
        return Path("runs/cli")

    def sample(cfg, checkpoint, conditions, num, out_dir, task=None, on_file=None):
        calls["sample"] = (cfg, checkpoint, conditions, num, out_dir)
        calls["task"] = task
        if on_file is not None:
            on_file(Path(out_dir) / "a.png")
        return [Path(out_dir) / "a.png"]

    def evaluate(cfg, checkpoint=None):
        calls["eval"] = (cfg, checkpoint)
        return {"seq/score": 0.75}

    api.train, api.sample, api.evaluate = train, sample, evaluate
    monkeypatch.setitem(sys.modules, "lumina_core.training.api", api)
    return calls


def test_train_passes_validated_recipe_and_resume(recipe, fake_api, capsys):
    assert main(["train", str(recipe), "train.max_steps=7", "--resume", "last"]) == 0
    cfg, resume = fake_api["train"]
    assert cfg.train.max_steps == 7 and resume == "last" and fake_api["allow_changes"] is False
    assert main(["train", str(recipe), "--resume", "last", "--allow-changes"]) == 0
    assert fake_api["allow_changes"] is True
    out = capsys.readouterr().out
    assert "runs/cli" in out and "seq (_cli_seq on _cli_data" in out


def test_train_refuses_invalid_recipe_before_training(recipe, fake_api):
    assert main(["train", str(recipe), "tasks.0.data.batch_size=0"]) == EXIT_USER_ERROR
    assert "train" not in fake_api


def test_sample_prompts_classes_and_overrides_anywhere(recipe, fake_api, tmp_path):
    out = str(tmp_path / "out")
    argv = [
        "sample",
        str(recipe),
        "--ckpt",
        "ck",
        "train.max_steps=9",
        "tasks.0.conditioning.encoder.name=minilm",  # captions need a text-conditioned task
        "--prompt",
        "a red circle",
        "a blue square",
        "tasks.0.data.batch_size=3",
        "--num",
        "2",
        "--out",
        out,
    ]
    assert main(argv) == 0
    cfg, ckpt, conditions, num, out_dir = fake_api["sample"]
    assert (ckpt, conditions, num, out_dir) == ("ck", ["a red circle", "a blue square"], 2, out)
    assert cfg.train.max_steps == 9 and cfg.tasks[0].data.batch_size == 3
    assert fake_api["task"] is None
    enc = "tasks.0.conditioning.encoder={name: class, params: {num_classes: 6, dim: 8}}"
    assert main(["sample", str(recipe), "--ckpt", "ck", "--class", "3", "5", "--task", "seq", enc]) == 0
    assert fake_api["sample"][2] == [3, 5] and fake_api["sample"][4] == str(Path("samples") / "cli")
    assert fake_api["task"] == "seq"


def test_sample_refuses_an_unknown_task_before_loading(recipe, fake_api, capsys):
    assert main(["sample", str(recipe), "--ckpt", "ck", "--task", "sq"]) == EXIT_USER_ERROR
    assert "sample" not in fake_api
    err = capsys.readouterr().err
    assert "--task 'sq' is not a task of" in err and "did you mean 'seq'?" in err and "its tasks: seq" in err


def test_eval_prints_and_writes_metrics(recipe, fake_api, tmp_path, capsys):
    dest = tmp_path / "m.json"
    assert main(["eval", str(recipe), "--ckpt", "ck", "--json", str(dest)]) == 0
    assert fake_api["eval"][1] == "ck"
    assert "seq/score" in capsys.readouterr().out
    assert json.loads(dest.read_text()) == {"seq/score": 0.75}


def test_convert_calls_interop(monkeypatch, tmp_path):
    import lumina_core.interop as interop

    seen = {}

    def convert(src, dst, src_format, preset=None):
        seen.update(src=src, dst=dst, fmt=src_format, preset=preset)
        return Path(dst)

    monkeypatch.setattr(interop, "convert", convert)
    src = tmp_path / "ckpt"
    src.mkdir()
    assert main(["convert", str(src), str(tmp_path / "dst"), "--from", "released", "--preset", "2B"]) == 0
    assert seen == {"src": str(src), "dst": str(tmp_path / "dst"), "fmt": "released", "preset": "2B"}
    assert main(["convert", str(tmp_path / "none"), "x", "--from", "diffusers"]) == EXIT_USER_ERROR


def test_data_pack_writes_shards(tmp_path, capsys):
    src = tmp_path / "pairs"
    src.mkdir()
    for i in range(3):
        (src / f"s{i}.png").write_bytes(b"\x89PNG fake bytes %d" % i)
        (src / f"s{i}.txt").write_text(f"caption {i}")
    assert main(["data", "pack", str(src), str(tmp_path / "shards"), "--shard-size", "2"]) == 0
    shards = sorted((tmp_path / "shards").glob("*.tar"))
    assert len(shards) == 2
    assert "packed 3 samples" in capsys.readouterr().out
    (src / "s3.png").write_bytes(b"no caption")
    assert main(["data", "pack", str(src), str(tmp_path / "s2")]) == EXIT_USER_ERROR
    assert "--missing-caption empty|skip" in capsys.readouterr().err
    assert main(["data", "pack", str(src), str(tmp_path / "s2"), "--missing-caption", "empty"]) == 0
    assert "packed 4 samples" in capsys.readouterr().out
    assert main(["data", "pack", str(tmp_path / "nothing"), str(tmp_path / "x")]) == EXIT_USER_ERROR


# -- plugins --------------------------------------------------------------------------------------------------------
def _fake_dist(root: Path, dist: str, version: str, name: str, module: str, source: str) -> None:
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[lumina.plugins]\n{name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fake_plugins_only(tmp_path, monkeypatch):
    """Entry points of the test's own fake distributions (``cli-*``, under tmp_path) only; undone after."""
    import importlib.metadata

    from lumina_core import registry

    real = importlib.metadata.entry_points

    def fake_only(*args, **kwargs):
        eps = real(*args, **kwargs)
        return [ep for ep in eps if ep.dist is not None and ep.dist.metadata["Name"].startswith("cli-")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_only)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset_plugins()
    with registry.temporary_registrations():
        yield tmp_path
    registry.reset_plugins()
    for module in ("cli_good_mod", "cli_bad_mod"):
        sys.modules.pop(module, None)


def test_plugins_list_shows_entry_points_and_broken_plugins(fake_plugins_only, capsys):
    tmp_path = fake_plugins_only
    _fake_dist(
        tmp_path,
        "cli-good",
        "1.4.2",
        "cligood",
        "cli_good_mod",
        """
        from fixtures.stubs import ValidationOnlyPlugin
        from lumina_core.registry import MODALITIES
        @MODALITIES.register("cligood")
        class P(ValidationOnlyPlugin):
            pass
    """,
    )
    _fake_dist(tmp_path, "cli-bad", "0.0.9", "clibad", "cli_bad_mod", "import lumina_no_such_module_abc\n")
    # without importing plugins: entry points only
    assert main(["plugins", "list", "--no-load"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("cligood"))
    assert line.split() == ["cligood", "plugin", "cli-good", "1.4.2", "not", "loaded"]
    assert "cli_good_mod" not in sys.modules
    # loading: the good one is a modality from its distribution, the bad one is broken with its cause
    assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln and not ln.startswith(" ")}
    assert rows["cligood"][1:] == ["modality", "cli-good", "1.4.2", "loaded"]
    assert rows["clibad"][1:] == ["plugin", "cli-bad", "0.0.9", "broken"]
    assert "lumina_no_such_module_abc" in out and "flow_matching" in out


def test_plugins_list_refuses_an_unknown_kind(capsys):
    assert main(["plugins", "list", "--no-load", "--kind", "modalty"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "unknown kind 'modalty'; did you mean 'modality'?" in err and "time grid" in err
    assert main(["plugins", "list", "--no-load", "--kind", "plugin"]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "not installed" not in out


def test_plugins_list_says_when_the_core_is_not_installed(monkeypatch, capsys):
    from lumina_core import registry

    monkeypatch.setattr(registry, "core_installed", lambda: False)
    assert main(["plugins", "list", "--no-load"]) == 0
    assert "'lumina' distribution is not installed" in capsys.readouterr().out


def test_plugins_new_refuses_bad_names_and_existing_folders(tmp_path, capsys):
    assert main(["plugins", "new", "Bad-Name", "--dir", str(tmp_path)]) == EXIT_USER_ERROR
    assert "lowercase identifier" in capsys.readouterr().err
    assert main(["plugins", "new", "ripples", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "lumina-ripples" / "pyproject.toml").is_file()
    assert main(["plugins", "new", "ripples", "--dir", str(tmp_path)]) == EXIT_USER_ERROR
    assert "already exists" in capsys.readouterr().err

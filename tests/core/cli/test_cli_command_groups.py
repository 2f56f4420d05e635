"""Commands made of sub-commands (``add_command_group``): alone they print their own help; a sub-command lands
in ``args.<group>_command``; the commands that read a recipe take it with its overrides (``_recipe_args``)."""

from __future__ import annotations

import pytest

from lumina_core.cli.main import build_parser, main

GROUPS = {
    "plugins": ["list", "new"],
    "config": ["validate", "show", "keys"],
    "data": ["pack"],
    "lora": ["merge", "export", "info"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_group_alone_prints_its_own_help(group, capsys):
    assert main([group]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lumina {group} [-h] SUBCOMMAND ...")
    for name in GROUPS[group]:
        assert f"\n    {name} " in out, (group, name, out)


def test_a_sub_command_lands_in_its_group_field():
    parser = build_parser()
    args, _ = parser.parse_known_args(["config", "show", "r.yaml", "a.b=1"])
    assert (args.command, args.config_command, args.handler) == ("config", "show", "config_show")
    assert (args.recipe, args.overrides) == ("r.yaml", ["a.b=1"])
    args, _ = parser.parse_known_args(["lora", "info", "x.safetensors"])
    assert args.lora_command == "info" and callable(args.handler)
    args, _ = parser.parse_known_args(["data"])
    assert args.handler == "help" and args.help_parser.prog == "lumina data" and args.data_command is None


@pytest.mark.parametrize("command", ["train", "sample", "eval", "predict", "serve"])
def test_every_recipe_command_takes_a_recipe_and_overrides(command):
    extra = {"sample": ["--ckpt", "c"], "predict": ["--input", "f.png"]}.get(command, [])
    args, rest = build_parser().parse_known_args([command, "r.yaml", "train.max_steps=3", *extra])
    assert (args.recipe, args.overrides, rest) == ("r.yaml", ["train.max_steps=3"], [])

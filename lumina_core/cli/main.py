"""The ``lumina`` command: argument parsing only.

Start-up must stay fast (``lumina --help`` well under a second), so this module imports nothing but
argparse; each command's handler (``lumina_core.cli.commands``) imports the heavy modules it needs when it
runs. Errors from bad recipes, unknown names or bad input print a clean message and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from lumina_core.cli.groups import add_command_group

EXIT_USER_ERROR = 2
_OVERRIDE = re.compile(r"^[~+]?[A-Za-z_][\w\-]*(\.[\w\-]+)*(=|$)")

DESCRIPTION = """\
Lumina-Next as a modality-agnostic framework: train, sample and evaluate recipes, manage plugins.

Recipes are YAML files under recipes/<modality>/; append key=value overrides after the recipe, e.g.
  lumina train recipes/image/shapes_tiny.yaml train.max_steps=100 tasks.0.data.batch_size=8
"""


def _recipe_args(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """The ``RECIPE`` positional and the ``KEY=VALUE`` overrides after it: what every command that reads a
    recipe takes (``help`` describes the recipe)."""
    p.add_argument("recipe", metavar="RECIPE", help=help)
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="recipe overrides, dotted keys with list indices (tasks.0.data.batch_size=8); ~key deletes; a "
        "mapping merges into the recipe's (a component with another name replaces it). More recipe files "
        "(*.yaml) here compose with RECIPE: their tasks join one run (docs/multitask.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (no command imports anything heavy)."""
    parser = argparse.ArgumentParser(
        prog="lumina", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of short error messages"
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train", help="train a recipe", description="Train a recipe; the run folder is printed."
    )
    _recipe_args(p, "recipe YAML file")
    p.add_argument(
        "--resume", metavar="last|DIR", help="resume from the run's last checkpoint or a checkpoint folder"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="the run folder holds an earlier run: move it aside (renamed, never deleted) and start again",
    )
    p.add_argument(
        "--allow-changes",
        action="store_true",
        help="with --resume: continue although keys that change the training steps differ from the "
        "checkpoint's recipe (the resumed run is then not the run that stopped)",
    )
    p.set_defaults(handler="train")

    p = sub.add_parser(
        "sample",
        help="generate samples from a checkpoint",
        description="Generate samples from a trained checkpoint with a recipe's sampling settings; writes files.",
    )
    _recipe_args(p, "recipe YAML file the checkpoint was trained with")
    p.add_argument(
        "--ckpt",
        required=True,
        metavar="DIR",
        help="a checkpoint folder, a run folder (its last checkpoint), or 'last' (this recipe's run)",
    )
    cond = p.add_mutually_exclusive_group()
    cond.add_argument(
        "--prompt", nargs="+", action="extend", metavar="TEXT", help="captions (quote each one)"
    )
    cond.add_argument(
        "--class", dest="classes", nargs="+", action="extend", type=int, metavar="N", help="class ids"
    )
    cond.add_argument(
        "--prompt-file", metavar="FILE", help="captions, one per line (a blank line is an error)"
    )
    cond.add_argument(
        "--unconditional", action="store_true", help="samples with no condition (the null caption/class)"
    )
    p.add_argument("--num", type=int, default=4, metavar="N", help="samples per condition (default 4)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: samples/<run name>)")
    p.add_argument("--task", metavar="NAME", help="which task of a multi-task recipe (default: the first)")
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="ADAPTER[:SCALE]",
        help="merge a LoRA adapter file into the weights first, with a scale (default 1); repeat for several",
    )
    p.add_argument(
        "--init",
        metavar="FILE",
        help="image-to-image (SDEdit): start from this sample file (an image, a WAV, a PLY), noised to --strength",
    )
    p.add_argument(
        "--strength",
        type=float,
        metavar="S",
        help="with --init: how much of the flow is re-run, in [0, 1] (0 returns the input, 1 ignores it; default 0.8)",
    )
    p.set_defaults(handler="sample")

    p = sub.add_parser(
        "eval", help="evaluate a checkpoint", description="Generate for held-out items and score them."
    )
    _recipe_args(p)
    p.add_argument(
        "--ckpt",
        metavar="DIR",
        help="a checkpoint or run folder (default: the last checkpoint of this recipe's run)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the metrics to this JSON file")
    p.set_defaults(handler="eval")

    p = sub.add_parser(
        "predict",
        help="top-k labels of files with a classification task",
        description="Classify files (or every file of folders) with a recipe's classification task; prints "
        "the top-k labels of each. Files that cannot be decoded are skipped and counted.",
    )
    _recipe_args(p, "recipe YAML file the checkpoint was trained with")
    p.add_argument(
        "--input", required=True, nargs="+", action="extend", metavar="PATH", help="files or folders"
    )
    p.add_argument(
        "--ckpt",
        metavar="DIR",
        help="a checkpoint or run folder (default: the last checkpoint of this recipe's run)",
    )
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="labels per file (default 3)")
    p.add_argument("--task", metavar="NAME", help="which task (default: the first classification task)")
    p.add_argument("--json", metavar="FILE", help="also write the predictions to this JSON file")
    p.set_defaults(handler="predict")

    p = sub.add_parser(
        "serve",
        help="a local web page to try a trained run",
        description="Start a local web page (gradio) to generate from a trained run: type a caption or a class, "
        "see images, hear audio, turn point clouds around. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    _recipe_args(p, "recipe YAML file the run was trained with")
    p.add_argument(
        "--ckpt", default="last", metavar="DIR", help="a checkpoint or run folder, or 'last' (default)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other needs an access token)",
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--out", metavar="DIR", help="keep the generated files here (default: a temporary folder)")
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="access token asked on the page's login (default: $LUMINA_SERVE_TOKEN; for a non-local --host "
        "one is generated and printed)",
    )
    limits = p.add_argument_group("limits of one request (shown on the page)")
    limits.add_argument(
        "--max-tokens", type=int, metavar="N", help="tokens per sample (default: 4x each task's trained size)"
    )
    limits.add_argument(
        "--max-samples", type=int, default=4, metavar="N", help="samples (default 4, at most 16)"
    )
    limits.add_argument("--max-steps", type=int, default=100, metavar="N", help="solver steps (default 100)")
    limits.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="estimated compute seconds on this machine; a running request stops at twice this (default 60)",
    )
    limits.add_argument(
        "--max-waiting", type=int, default=8, metavar="N", help="requests waiting behind the running one (8)"
    )
    p.set_defaults(handler="serve")

    psub = add_command_group(sub, "plugins", help="list installed plugins, scaffold a new one")
    q = psub.add_parser(
        "list",
        help="every registered name: name, kind, distribution, version, status",
        description="List registered components and the plugins of the entry-point group 'lumina.plugins'.",
    )
    q.add_argument("--no-load", action="store_true", help="list entry points only, without importing plugins")
    q.add_argument("--kind", help="only this kind (modality, dataset, conditioner, objective, solver, ...)")
    q.set_defaults(handler="plugins_list")
    q = psub.add_parser(
        "new",
        help="scaffold an installable plugin package",
        description="Create an installable plugin package (pyproject entry point, plugin, procedural dataset, "
        "recipe, conformance test) that passes the conformance suite as generated.",
    )
    q.add_argument("name", metavar="NAME", help="plugin (modality) name, e.g. 'tones' (lowercase identifier)")
    q.add_argument("--dir", default=".", metavar="DIR", help="parent folder (default: current folder)")
    q.add_argument("--force", action="store_true", help="write into an existing, non-empty folder")
    q.add_argument(
        "--condition",
        choices=("class", "text"),
        default="class",
        help="what the generated dataset's items carry: class labels (default) or text captions (a MiniLM "
        "recipe, a checker whose chance level is the shuffled captions)",
    )
    q.set_defaults(handler="plugins_new")

    csub = add_command_group(sub, "config", help="validate a recipe or show it resolved")
    q = csub.add_parser("validate", help="report every problem of a recipe at once")
    _recipe_args(q)
    q.set_defaults(handler="config_validate")
    q = csub.add_parser("show", help="print the recipe merged with defaults and overrides, as YAML")
    _recipe_args(q)
    q.add_argument("--no-resolve", action="store_true", help="keep ${...} interpolations")
    q.set_defaults(handler="config_show")
    q = csub.add_parser("keys", help="every recipe key: type, default and what it does (Markdown)")
    q.set_defaults(handler="config_keys")

    p = sub.add_parser(
        "convert",
        help="convert a checkpoint between a public layout and the project's format",
        description="Convert a checkpoint between a public layout and the project's format (a folder of "
        "model.safetensors + config.json that lumina sample --ckpt, train.init_from and lumina lora read). "
        "--from FORMAT reads SRC in a registered checkpoint format and writes our format at DST; --to FORMAT reads "
        "SRC in our format, or a training run fine-tuned in full from such a model (runs/NAME, "
        "runs/NAME/checkpoints/last or step_N: its EMA weights, --raw-weights for the raw ones), and writes the "
        "format's public layout --layout at DST (a single-file layout takes a DST file, a folder layout a new "
        "folder); --dtype casts the weights written (default float32, as our format). A LoRA run is refused: "
        "`lumina lora export` writes its adapter, `lumina lora merge` folds it into the base. "
        "`lumina plugins list` names the registered formats; the image plugin's (released and diffusers "
        "Lumina-Next, lumina2 for Lumina-Image 2.0, z_image for Z-Image) and their layouts are in docs/lumina2.md "
        "and docs/cli.md.",
    )
    p.add_argument("src", metavar="SRC",
                   help="the checkpoint to read (with --to: a folder in our format, or a training run or checkpoint)")  # fmt: skip
    p.add_argument("dst", metavar="DST", help="where to write (nothing is overwritten)")
    way = p.add_mutually_exclusive_group(required=True)
    way.add_argument("--from", dest="src_format", metavar="FORMAT",
                     help="read SRC in this registered format (`lumina plugins list`), write our format")  # fmt: skip
    way.add_argument("--to", dest="dst_format", metavar="FORMAT",
                     help="read our format or a training run, write this registered format's public layout")  # fmt: skip
    p.add_argument("--layout", metavar="L",
                   help="with --to: one of the format's layouts (an unknown one is refused, naming them)")  # fmt: skip
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="with --to: the weights' dtype in the written files (default float32, as our format)")  # fmt: skip
    p.add_argument("--raw-weights", action="store_true",
                   help="with --to and a training run: its raw weights instead of the EMA (the default)")  # fmt: skip
    p.add_argument("--preset", metavar="P", help="with --from: trunk preset (default: inferred from the checkpoint)")
    p.set_defaults(handler="convert")

    dsub = add_command_group(sub, "data", help="data tools")
    q = dsub.add_parser(
        "pack",
        help="pack a folder of FILE + FILE.txt pairs into webdataset shards",
        description="Pack a folder of samples with caption files (FILE + FILE.txt) into webdataset shards.",
    )
    q.add_argument("src", metavar="SRC")
    q.add_argument("dst", metavar="DST")
    q.add_argument("--shard-size", type=int, metavar="N", help="samples per shard")
    q.add_argument(
        "--missing-caption",
        choices=("error", "empty", "skip"),
        default=None,
        help="a file without FILE.txt: stop with an error (default without --modality), pack the empty "
        "caption, or skip it; with --modality the modality's folder dataset decides by default",
    )
    q.add_argument(
        "--modality", metavar="NAME", help="pack SRC as NAME's folder dataset reads it (image, audio, ...)"
    )
    q.add_argument("--overwrite", action="store_true", help="replace shards and a manifest already in DST")
    q.set_defaults(handler="data_pack")
    from lumina_core.cli.lora import add_parser as add_lora_parser  # argparse only: start-up stays fast

    add_lora_parser(sub)
    return parser


def _split_overrides(args: argparse.Namespace, extra: list[str], parser: argparse.ArgumentParser) -> None:
    """Overrides may come anywhere on the line; captions never look like ``dotted.key=value``."""
    overrides = list(getattr(args, "overrides", None) or [])
    unknown = []
    for item in extra:
        (overrides if _OVERRIDE.match(item) and "=" in item else unknown).append(item)
    prompts = getattr(args, "prompt", None)
    if prompts:
        args.prompt = [t for t in prompts if not (_OVERRIDE.match(t) and "=" in t and " " not in t)]
        overrides += [t for t in prompts if t not in args.prompt]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "overrides"):
        args.overrides = overrides
    elif overrides:
        parser.error(f"this command takes no overrides: {' '.join(overrides)}")


def _is_user_error(exc: BaseException) -> bool:
    """Errors whose message is the whole story: bad recipes, unknown names, bad input, missing files,
    damaged checkpoints, a run that cannot go on (``lumina_core.errors.LuminaError``).

    A bare KeyError or IndexError is a bug, not a user error: it keeps its traceback."""
    registry = sys.modules.get("lumina_core.registry")
    if registry is not None and isinstance(exc, registry.RegistryError):
        return True
    errors = sys.modules.get("lumina_core.errors")
    if errors is not None and isinstance(exc, errors.LuminaError):
        return True
    return isinstance(exc, ValueError | FileNotFoundError | NotADirectoryError | FileExistsError)


def _install_warning_format() -> None:
    """Print a :class:`lumina_core.errors.LuminaWarning` as one line (``lumina: warning: ...``), without the
    file, line number and source line Python adds; other warnings keep Python's format."""
    import warnings

    python_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        errors = sys.modules.get("lumina_core.errors")
        if errors is not None and issubclass(category, errors.LuminaWarning):
            return f"lumina: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    if getattr(python_format, "__name__", "") != "one_line":
        warnings.formatwarning = one_line


def _exit_code(exc: BaseException) -> int:
    code = getattr(exc, "exit_code", EXIT_USER_ERROR)
    return code if isinstance(code, int) and code > 0 else EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lumina`` command; returns the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LUMINA_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.debug = debug
    if args.version:
        from lumina_core import CORE_API_VERSION, __version__

        print(f"lumina {__version__} (plugin API {CORE_API_VERSION})")
        return 0
    if not args.command:
        parser.print_help()
        return 0
    _split_overrides(args, extra, parser)
    if args.handler == "help":
        args.help_parser.print_help()
        return 0
    from lumina_core.cli import commands

    _install_warning_format()
    try:
        handler = args.handler if callable(args.handler) else getattr(commands, args.handler)
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("lumina: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors get a message, everything else its traceback
        if debug or not _is_user_error(exc):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        kind = "stopped" if getattr(exc, "exit_code", EXIT_USER_ERROR) != EXIT_USER_ERROR else "error"
        print(f"lumina {args.command}: {kind}: {message}", file=sys.stderr)
        print("(run with --debug, or LUMINA_DEBUG=1, to see the traceback)", file=sys.stderr)
        return _exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())

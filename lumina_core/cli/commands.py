"""Handlers of the ``lumina`` commands. Each imports what it needs when it runs (never at start-up).

The heavy lifting lives elsewhere: training, sampling and evaluation in ``lumina_core.training.api``,
conversion in ``lumina_core.interop``, shard packing in ``lumina_core.data.shards``, the plugin scaffold in
``lumina_core.scaffold``. These handlers load and validate the recipe, say what they are about to do and
where files go, call the library, and print the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from lumina_core.cli.outputs import check_output_file, check_output_folder


def _say(msg: str) -> None:
    print(msg, flush=True)


def _recipes_and_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """More recipe files among the positional arguments (``lumina train A.yaml B.yaml key=value``) and the
    overrides (everything with ``=`` or ``~``)."""
    extra = [o for o in args.overrides or [] if "=" not in o and not o.startswith("~") and o.endswith((".yaml", ".yml"))]
    return extra, [o for o in args.overrides or [] if o not in extra]


def _load(args: argparse.Namespace) -> Any:
    from lumina_core.config import load_recipe

    extra, overrides = _recipes_and_overrides(args)
    return load_recipe(args.recipe, overrides, include=extra)


def _load_runnable(args: argparse.Namespace, training: bool = False) -> Any:
    """The recipe of a command that runs the model (train, sample, eval, serve, predict), refused in one
    paragraph (exit 2) when ``run.device`` names a device this machine lacks, before anything is built
    (``training``: each of the ``train.devices`` processes needs one)."""
    from lumina_core.config.devices import require_device

    cfg = _load(args)
    require_device(str(cfg.run.device), int(cfg.train.devices) if training else 1)
    return cfg


def _did_you_mean(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _describe_tasks(cfg: Any) -> str:
    weighted = str(cfg.train.mixing) == "weighted"
    parts = []
    for task in cfg.tasks:
        weights = f"loss weight {task.loss_weight}" + (f", draw weight {task.draw_weight}" if weighted else "")
        parts.append(f"{task.name} ({task.modality.name} on {task.data.name}, {weights})")
    mixing = "one task drawn per step" if weighted else "every task every step"
    return ", ".join(parts) + (f"; {mixing}" if len(parts) > 1 else "")


# -- train / sample / eval ---------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    from lumina_core.training.ranks import launch_rank

    cfg = _load_runnable(args, training=True)
    say = _say if launch_rank() == 0 else (lambda msg: None)  # the other ranks of a data-parallel run are quiet
    say(f"lumina train: {args.recipe}: {len(cfg.tasks)} task(s): {_describe_tasks(cfg)}")
    ranks = int(cfg.train.devices) * int(cfg.train.num_nodes)
    say(
        f"  {cfg.train.max_steps} steps; run folder {cfg.run.output_dir}"
        + (f"; {ranks} data-parallel processes" if ranks > 1 else "")
        + (f"; resuming from {args.resume}" if args.resume else "")
    )
    from lumina_core.training.api import train as run_training

    run_dir = run_training(
        cfg,
        resume=args.resume,
        overwrite=bool(getattr(args, "overwrite", False)),
        allow_changes=bool(getattr(args, "allow_changes", False)),
    )
    if len(cfg.tasks) > 1:
        from lumina_core.training import checkpoint as ckpt_io

        last = Path(run_dir) / "checkpoints" / "last"
        steps = ckpt_io.task_steps(Path(run_dir) / "checkpoints" / last.read_text().strip()) if last.is_file() else None
        if steps:
            say("steps per task: " + ", ".join(f"{name} {n}" for name, n in steps.items()))
    say(f"done: run folder {run_dir} (checkpoints, previews and logs; `tensorboard --logdir {run_dir}`)")
    return 0


#: above this many samples in one call, ``lumina sample`` warns (each is generated and written to disk)
MANY_SAMPLES = 1000


def _prompts(args: argparse.Namespace) -> list[str] | None:
    """Captions from ``--prompt`` or ``--prompt-file``; a blank one is an error (it would silently give an
    unconditional sample: ``--unconditional`` asks for those explicitly)."""
    if args.prompt_file:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise FileNotFoundError(f"--prompt-file {path}: no such file")
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()  # trailing blank lines are how files end
        blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
        if blank:
            raise ValueError(
                f"--prompt-file {path}: line(s) {', '.join(map(str, blank[:10]))} are blank; a blank caption "
                "would give an unconditional sample. Remove them (use --unconditional for unconditional samples)"
            )
        if not lines:
            raise ValueError(f"--prompt-file {path} holds no captions")
        return [line.strip() for line in lines]
    if args.prompt:
        blank = [i + 1 for i, p in enumerate(args.prompt) if not p.strip()]
        if blank:
            raise ValueError(
                f"--prompt: caption(s) number {', '.join(map(str, blank))} are empty; an empty caption would give "
                "an unconditional sample (use --unconditional for those)"
            )
        return list(args.prompt)
    return None


def _task_condition_kind(cfg: Any, task_name: str | None) -> tuple[str, str]:
    """``(task name, kind of condition its conditioner encodes)`` without building the conditioner."""
    from lumina_core.training.task_facts import condition_kind_of

    task = next((t for t in cfg.tasks if t.name == task_name), None) if task_name else cfg.tasks[0]
    return str(task.name), condition_kind_of(task)


def sample(args: argparse.Namespace) -> int:
    cfg = _load_runnable(args)
    if args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    from lumina_core.finetune.lora import parse_adapter_arg  # bad scales are refused before anything is read

    lora = [parse_adapter_arg(a) for a in args.lora]
    tasks = [str(t.name) for t in cfg.tasks]
    if args.task and args.task not in tasks:
        raise ValueError(
            f"--task {args.task!r} is not a task of {args.recipe}{_did_you_mean(args.task, tasks)}; "
            f"its tasks: {', '.join(tasks)}"
        )
    prompts = _prompts(args)
    conditions: list | None = prompts
    if args.classes:
        conditions = list(args.classes)
    if args.unconditional:
        conditions = [None]
    name, kind = _task_condition_kind(cfg, args.task)
    given = "text" if prompts else "class" if args.classes else None
    if given and kind != given:
        use = {"text": "--prompt or --prompt-file", "class": "--class", "none": "--unconditional"}.get(kind, "")
        raise ValueError(
            f"task {name!r} of {args.recipe} is {kind}-conditioned, but {given} conditions were given; "
            f"use {use}" + (" (or leave them out: held-out conditions are used)" if kind != "none" else "")
        )
    total = args.num * (len(conditions) if conditions else 1)
    if total > MANY_SAMPLES:
        print(
            f"lumina sample: warning: {total} samples requested; each is generated and written to disk "
            "as it is made (Ctrl+C stops; files written so far are kept and listed in manifest.json)",
            file=sys.stderr,
        )
    out_dir = args.out or str(Path("samples") / str(cfg.run.name))
    check_output_folder(out_dir, "--out")
    what = f"{len(conditions)} condition(s) x {args.num}" if conditions else f"{args.num} sample(s)"
    task = f" (task {args.task})" if args.task else ""
    _say(f"lumina sample: {what}{task} from checkpoint {args.ckpt}; writing to {out_dir}")
    from lumina_core.training.api import sample as run_sampling

    extra: dict[str, Any] = {"task": args.task} if args.task else {}
    if args.strength is not None and not args.init:
        raise ValueError("--strength needs --init FILE (the sample to start from)")
    if lora:
        extra["lora"] = lora
    if args.init:
        extra["init"], extra["strength"] = args.init, args.strength
    paths = run_sampling(
        cfg, args.ckpt, conditions, args.num, out_dir, on_file=lambda p: _say(f"  wrote {p}"), **extra
    )
    _say(f"done: {len(paths)} file(s) in {out_dir}, listed in {Path(out_dir) / 'manifest.json'}")
    return 0


def eval(args: argparse.Namespace) -> int:  # noqa: A001 - the command is called eval
    cfg = _load_runnable(args)
    check_output_file(args.json, "--json")  # before the evaluation, not after it
    _say(f"lumina eval: {args.recipe}, checkpoint {args.ckpt or 'last of the run'}")
    from lumina_core.training.api import evaluate

    metrics = evaluate(cfg, args.ckpt)
    width = max((len(k) for k in metrics), default=0)
    for key, value in sorted(metrics.items()):
        _say(f"  {key:<{width}}  {value:.4f}" if isinstance(value, float) else f"  {key:<{width}}  {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        _say(f"wrote {args.json}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from lumina_core.serve.access import exposure, resolve_token
    from lumina_core.serve.limits import Limits

    cfg = _load_runnable(args)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    limits = Limits(args.max_tokens, args.max_samples, args.max_steps, args.max_seconds, args.max_waiting)
    token, source = resolve_token(args.host, args.token)
    _say(f"lumina serve: {args.recipe}, checkpoint {args.ckpt}; tasks: {_describe_tasks(cfg)}")
    from lumina_core.serve.app import launch
    from lumina_core.serve.session import ServeSession

    session = ServeSession(cfg, args.ckpt, out_dir=args.out, limits=limits)
    if session.load_error:
        _say(f"  not loaded yet (the page will say so and retry on each request): {session.load_error}")
    for task in session.tasks:
        _say(f"  limits for {task}: {session.limits_text(task)}")
    _say(f"  files go to {session.out_dir} (Ctrl+C stops)")
    for line in exposure(args.host, args.port, token, source):
        _say(line)
    try:
        launch(session, host=args.host, port=args.port, token=token)
    finally:
        session.close()  # also on Ctrl+C: the queue stops and an unused temporary folder goes
    return 0


def predict(args: argparse.Namespace) -> int:
    cfg = _load_runnable(args)
    check_output_file(args.json, "--json")
    _say(f"lumina predict: {args.recipe}, checkpoint {args.ckpt or 'last of the run'}, top {args.top_k}")
    from lumina_core.recognition.predict import predict as run_prediction

    report = run_prediction(cfg, args.ckpt, args.input, top_k=args.top_k, task=args.task)
    for pred in report.predictions:
        _say(f"  {pred.path}  " + "  ".join(f"{label} ({p:.2f})" for label, p in pred.top))
    for path, reason in report.skipped:
        _say(f"  skipped {path}: {reason}")
    if report.ignored:
        kinds = Counter(p.suffix.lower() or "(no extension)" for p in report.ignored)
        _say(
            f"  ignored {len(report.ignored)} file(s) of the folders that are not files this task reads: "
            + ", ".join(f"{n} {ext}" for ext, n in kinds.most_common())
        )
    if args.json:
        rows = [{"path": str(p.path), "top": [[lab, v] for lab, v in p.top]} for p in report.predictions]
        skipped = [{"path": str(f), "reason": r} for f, r in report.skipped]
        ignored = [str(f) for f in report.ignored]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"predictions": rows, "skipped": skipped, "ignored": ignored}, indent=2) + "\n"
        )
        _say(f"wrote {args.json}")
    _say(
        f"done: {len(report.predictions)} file(s) classified, {len(report.skipped)} skipped (unreadable)"
        + (f", {len(report.ignored)} ignored" if report.ignored else "")
    )
    return 0 if report.predictions else 2


# -- plugins -------------------------------------------------------------------------------------------------
def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    return "\n".join(lines)


def plugins_list(args: argparse.Namespace) -> int:
    from lumina_core import registry

    header = ("NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS")
    kinds = ["plugin", *registry.ALL_REGISTRIES]
    if args.kind and args.kind not in kinds:
        raise ValueError(
            f"unknown kind {args.kind!r}{_did_you_mean(args.kind, kinds)}; kinds: {', '.join(kinds)}"
        )
    entries = registry.plugin_entries()
    rows: list[tuple[str, ...]] = []
    if args.no_load:
        for e in sorted(entries.values(), key=lambda e: e.name):
            rows.append((e.name, "plugin", e.distribution or "-", e.version or "-", e.status))
    else:
        broken = registry.load_all_plugins()
        for reg in list(registry.ALL_REGISTRIES.values()):
            for name in reg.names():
                o = reg.origin_info(name)
                rows.append((name, reg.kind, o.distribution or "-", o.version or "-", "loaded"))
        for e in broken:
            rows.append((e.name, "plugin", e.distribution or "-", e.version or "-", "broken"))
        for e in entries.values():  # loaded, but nothing came of it: worth seeing
            if e.status == "loaded" and not e.registered and e.name not in registry.MODALITIES:
                rows.append((e.name, "plugin", e.distribution or "-", e.version or "-", "loaded-empty"))
        rows.sort(key=lambda r: (r[1], r[0]))
    if args.kind:
        rows = [r for r in rows if r[1] == args.kind]
    _say(_table(rows, header) if rows else "(nothing registered)")
    if any(r[4] == "loaded-empty" for r in rows):
        _say("\nloaded-empty: the plugin's module imported fine but registered nothing")
    if not registry.core_installed():
        _say(
            f"\nnote: the {registry.CORE_DISTRIBUTION!r} distribution is not installed, so the built-in "
            "modalities have no entry points: run `pip install -e .` in the repository"
        )
    if args.no_load:
        _say(
            f"\n{len(entries)} plugin(s) declared under the entry-point group {registry.ENTRY_POINT_GROUP!r} (not imported)."
        )
    else:
        for e in entries.values():
            if e.status == "broken":
                _say(f"\nbroken: {e.error}")
    return 0


def plugins_new(args: argparse.Namespace) -> int:
    from lumina_core.scaffold import create_plugin

    root = create_plugin(args.name, args.dir, force=args.force, condition=args.condition)
    _say(f"created plugin package {root}")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            _say(f"  {p.relative_to(root)}")
    _say(
        "next:\n"
        f"  pip install -e {root}            # registers the entry point\n"
        f"  pytest {root / 'tests'}           # runs the conformance suite\n"
        f"  lumina config validate {root / 'recipes' / args.name / 'tiny.yaml'}"
    )
    return 0


# -- config --------------------------------------------------------------------------------------------------
def config_validate(args: argparse.Namespace) -> int:
    from lumina_core.config import load_recipe

    extra, overrides = _recipes_and_overrides(args)
    cfg = load_recipe(args.recipe, overrides, check_build=True, include=extra)  # RecipeError lists every problem
    _say(f"ok: {args.recipe} is valid: {len(cfg.tasks)} task(s): {_describe_tasks(cfg)}")
    return 0


def config_keys(args: argparse.Namespace) -> int:
    from lumina_core.config.reference import markdown

    _say(markdown())
    return 0


def config_show(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = _load(args)
    sys.stdout.write(
        f"# {args.recipe}" + (f" with {' '.join(args.overrides)}" if args.overrides else "") + "\n"
    )
    sys.stdout.write(OmegaConf.to_yaml(cfg, resolve=not args.no_resolve))
    return 0


# -- convert / data ------------------------------------------------------------------------------------------
def convert(args: argparse.Namespace) -> int:
    src = Path(args.src)
    if args.dst_format is not None:
        return _convert_to(args, src)
    if not src.exists():
        raise FileNotFoundError(f"no checkpoint at {src}")
    if args.layout is not None or args.dtype is not None or args.raw_weights:
        raise ValueError(
            "--layout, --dtype and --raw-weights go with --to FORMAT (writing a public layout); --from always "
            "writes our format"
        )
    check_output_folder(args.dst, "DST")
    _say(f"lumina convert: {args.src_format} checkpoint {src} -> {args.dst}")
    from lumina_core.interop import convert as run_convert

    out = run_convert(str(src), str(args.dst), src_format=args.src_format, preset=args.preset)
    _say(f"done: {out}")
    return 0


def _convert_to(args: argparse.Namespace, src: Path) -> int:
    """``lumina convert SRC DST --to FORMAT [--layout L]``: a converted checkpoint or a training run of one (EMA
    weights unless ``--raw-weights``) back to a public layout."""
    if args.preset is not None:
        raise ValueError("--preset goes with --from (reading a foreign checkpoint); --to takes the sizes from SRC")
    from lumina_core.interop.to_public import export, export_format, read_export_source

    _, layout = export_format(args.dst_format, args.layout)  # an unknown format or layout: before reading weights
    _say(f"lumina convert: {src} -> {args.dst_format} ({layout} layout) at {args.dst}")
    source = read_export_source(src, args.dst_format, raw_weights=args.raw_weights)
    _say(f"  from {source.what}")
    written = export(source, str(args.dst), dst_format=args.dst_format, layout=layout, dtype=args.dtype)
    _say("done: " + ", ".join(str(p) for p in written))
    return 0


def data_pack(args: argparse.Namespace) -> int:
    src = Path(args.src)
    if not src.is_dir():
        raise NotADirectoryError(f"{src} is not a folder (expected FILE + FILE.txt pairs)")
    if args.shard_size is not None and args.shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {args.shard_size}")
    modality = getattr(args, "modality", None)
    dst = str(args.dst)
    check_output_folder(Path(dst).parent if "%" in dst or dst.endswith(".tar") else dst, "DST")  # a pattern's folder
    _say(f"lumina data pack: {src} -> shards in {args.dst}" + (f" (as {modality} data)" if modality else ""))
    from lumina_core.data.pack import pack_folder

    kwargs = {} if args.shard_size is None else {"shard_size": args.shard_size}
    report = pack_folder(
        str(src), str(args.dst), missing_caption=args.missing_caption, modality=modality,
        overwrite=bool(getattr(args, "overwrite", False)), **kwargs,
    )  # fmt: skip
    _say(f"  {report}")
    _say(f"done: shards in {args.dst}; manifest {report.manifest}")
    return 0

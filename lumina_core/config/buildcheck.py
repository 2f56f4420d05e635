"""Validation pass 3: what building the run would refuse, found without training, data or weights.

``lumina config validate`` must say "ok" only for recipes that ``lumina train`` then accepts. After the
structure and registry passes (:mod:`.validate`), this pass builds what is cheap to build, exactly as a run
builds it, and records each refusal as a ``"path: message"`` problem:

* ``run.device``: a device name, and one this machine has (:mod:`.devices`: ``cuda`` where torch sees no GPU,
  ``cuda:7`` on a one-GPU machine and ``mps`` off a Mac are refused here, not at the first step);
* ``train.precision`` against what the trainer accepts (Lightning's precision names);
* ``train.optimizer``: a known name, and for the 8-bit ones bitsandbytes installed and a device other than the CPU;
* ``train.lora``: the adapter's settings (a positive rank and alpha, dropout in [0, 1), patterns that are
  regular expressions) and positive ``lr`` / ``lr_ratio``;
* the trunk: the model section through :class:`NextDiTConfig` (preset, heads dividing ``dim``, ...);
* each task's plugin (skipped when its parameters give it a nested component such as an autoencoder or a
  codec, which may load weights) and its
  ``AdapterSpec``: tokens no wider than the trunk (wider tokens cannot be spanned by the final layer);
* each task's dataset, built for ``train`` and ``val`` the way the trainer builds it (the split contract,
  paths that must exist, bad parameters), its condition kind against the conditioner's, and (map-style
  datasets) that at least one item can be read: a folder whose every file is unreadable is refused here.

Datasets are constructed (file lists are read) and read up to their first readable item (usually one item;
streams are not read); plugins are not built when that would load weights.
"""

from __future__ import annotations

from typing import Any, get_args

from lumina_core.config.devices import device_problem

#: what Lightning's Trainer accepts as ``precision`` (importing Lightning to ask would cost seconds on every
#: ``config validate``; a test keeps this list equal to Lightning's own)
LIGHTNING_PRECISIONS = (
    "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
    "32-true", "64-true", "64", "32", "16", "bf16",
)  # fmt: skip


def lightning_precisions() -> tuple[str, ...]:
    """The precision names Lightning itself declares (imports Lightning)."""
    from lightning.fabric.plugins.precision import precision as p

    return tuple(str(v) for v in (*get_args(p._PRECISION_INPUT_STR), *get_args(p._PRECISION_INPUT_STR_ALIAS)))


def check_buildable(tree: dict, problems: list[str]) -> None:
    """Append a problem for each part of the resolved recipe ``tree`` that building the run would refuse."""
    run = tree.get("run") if isinstance(tree.get("run"), dict) else {}
    device = run.get("device")
    train = tree.get("train") if isinstance(tree.get("train"), dict) else {}
    if isinstance(device, str):
        processes = train.get("devices") if isinstance(train.get("devices"), int) else 1
        problems.extend(filter(None, [device_problem(device, processes)]))
    precision = train.get("precision")
    if isinstance(precision, str) and precision not in LIGHTNING_PRECISIONS:
        problems.append(
            f"train.precision: expected one of Lightning's {', '.join(LIGHTNING_PRECISIONS)}; got {precision!r}"
        )
    optimizer = train.get("optimizer")
    if isinstance(optimizer, str):  # bitsandbytes' 8-bit optimisers: installed, and not on a CPU run
        from lumina_core.finetune.optim import optimizer_problem

        where = device if isinstance(device, str) else None
        if where == "auto":  # the device the run will take here (8-bit optimisers need a CUDA GPU)
            import torch

            where = "cuda" if torch.cuda.is_available() else "cpu"
        problems.extend(filter(None, [optimizer_problem(optimizer, where)]))
    if isinstance(train.get("lora"), dict) and not _reported(problems, "train.lora"):
        _check_lora(train["lora"], train.get("lr"), problems)
    dim = None if any(p.startswith("model.") for p in problems) else _check_model(tree.get("model"), problems)
    tasks = tree.get("tasks")
    for i, task in enumerate(tasks if isinstance(tasks, list) else []):
        if isinstance(task, dict):
            _check_task(task, f"tasks.{i}", dim, problems)


def _reported(problems: list[str], path: str) -> bool:
    """Whether an earlier pass already found something wrong at or below ``path`` (not reported twice)."""
    return any(p.startswith(path + ".") or p.startswith(path + ":") for p in problems)


def _placeholder(params: Any) -> bool:
    """Parameters still holding ``???`` (a value the user gives on the command line): nothing to build yet."""
    return isinstance(params, dict) and any(v == "???" for v in params.values())


def _check_lora(lora: dict, lr: Any, problems: list[str]) -> None:
    """``train.lora`` as the run builds it: the adapter's settings (rank, alpha, dropout, patterns) and its
    optimiser groups (``lr``, ``lr_ratio``)."""
    from lumina_core.finetune.lora import DEFAULT_TRAIN_ALSO, LoraSettings
    from lumina_core.finetune.optim import lora_param_groups
    from lumina_core.finetune.settings import resolved_targets

    targets, also = lora.get("targets"), lora.get("train_also")
    values = {k: lora[k] for k in ("rank", "alpha", "dropout") if lora.get(k) is not None}
    for check in (
        lambda: LoraSettings(
            **values,
            targets=resolved_targets(targets, lora.get("adapt_conditioning", True)),
            train_also=list(DEFAULT_TRAIN_ALSO if also is None else also),
        ),
        lambda: lora_param_groups({}, lr if isinstance(lr, (int, float)) else 1.0, lora.get("lr"),
                                  lora.get("lr_ratio", 1.0)),
    ):  # fmt: skip
        try:
            check()
        except (ValueError, TypeError) as exc:
            problems.append(str(exc) if str(exc).startswith("train.lora.") else f"train.lora: {exc}")


def _check_model(model: Any, problems: list[str]) -> int | None:
    if not isinstance(model, dict):
        return None
    from lumina_core.model import NextDiTConfig

    values = {k: v for k, v in model.items() if v is not None}
    try:
        return int(NextDiTConfig.from_dict(values).dim)
    except (ValueError, TypeError) as exc:
        problems.append(f"model: {exc}")
        return None


def _loads_weights(name: str, params: Any) -> bool:
    """Whether a plugin's parameters give it a component of its own to build (what it declares in
    ``nested_components``: an autoencoder, a codec), which may load weights from a user's path: building
    such a plugin is left to the run."""
    from lumina_core.registry import MODALITIES, RegistryError

    if not isinstance(params, dict):
        return False
    try:
        nested = MODALITIES.nested(name)
    except RegistryError:
        return False
    return any(params.get(key) for key in nested)


def _check_task(task: dict, base: str, dim: int | None, problems: list[str]) -> None:
    from lumina_core.registry import CONDITIONERS, DATASETS, MODALITIES

    modality = task.get("modality") if isinstance(task.get("modality"), dict) else {}
    name, params = modality.get("name"), modality.get("params") or {}
    if (
        isinstance(name, str)
        and name in MODALITIES
        and not _loads_weights(name, params)
        and not _reported(problems, f"{base}.modality")
    ):
        try:
            plugin = MODALITIES.build({"name": name, "params": params})
            spec = plugin.adapter_spec()
        except Exception as exc:  # noqa: BLE001 - any refusal of the plugin is the recipe's problem
            problems.append(f"{base}.modality: modality {name!r} refused its parameters: {exc}")
        else:
            width = int(getattr(spec, "out_dim", 0) or 0)
            if task.get("learn_sigma") is True:  # the core doubles the head of a learn_sigma task
                width = 2 * int(getattr(spec, "in_dim", 0) or 0)
            if dim is not None and width > dim:
                problems.append(
                    f"{base}.modality: the model must predict {width} values per token but the trunk is {dim} "
                    "wide, so the final "
                    "layer cannot span the token space (noise stays in every sample); use a smaller patch "
                    "or a wider model.dim"
                )
    enc = (
        (task.get("conditioning") or {}).get("encoder")
        if isinstance(task.get("conditioning"), dict)
        else None
    )
    enc_kind = None
    if isinstance(enc, dict) and isinstance(enc.get("name"), str) and enc["name"] in CONDITIONERS:
        enc_kind = getattr(CONDITIONERS.get(enc["name"]), "kind", None)
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    dname = data.get("name")
    if not (isinstance(dname, str) and dname in DATASETS) or _reported(problems, f"{base}.data"):
        return  # an unknown dataset, or bad parameters, are reported by the registry pass
    if _placeholder(data.get("params")) or _placeholder(data.get("val_params")):
        return  # e.g. a data root the user gives on the command line (``???``)
    from lumina_core.data.contract import build_dataset, check_condition_kinds, condition_kind_of

    for split in ("train", "val"):
        try:
            ds = build_dataset(dname, data.get("params"), split, data.get("val_params"))
        except Exception as exc:  # noqa: BLE001 - what the trainer would meet, reported not raised
            problems.append(f"{base}.data: dataset {dname!r} ({split} split) cannot be built: {exc}")
            return
        problem = check_condition_kinds(condition_kind_of(ds), enc_kind, f"{base}.conditioning.encoder")
        if problem:
            problems.append(problem)
            return
        problem = _nothing_readable(ds)
        if problem:
            problems.append(f"{base}.data: dataset {dname!r} ({split} split): {problem}")
            return


def _nothing_readable(dataset: Any) -> str | None:
    """Why no item of a map-style ``dataset`` can be read (every file unreadable: the run would stop at its
    first batch), or None. Items are read in order until one decodes, so a dataset whose first item is fine
    costs one read; streams are not read (they may be remote)."""
    from lumina_core.data.robust import SkipCorrupt
    from lumina_core.data.stream import is_stream

    if is_stream(dataset) or not hasattr(dataset, "__len__"):
        return None
    raw = dataset.dataset if isinstance(dataset, SkipCorrupt) else dataset
    first: Exception | None = None
    for i in range(len(raw)):
        try:
            raw[i]
        except Exception as exc:  # noqa: BLE001 - what the trainer's reader would meet, reported not raised
            first = first or exc
            continue
        return None
    if first is None:
        return None  # no items: the dataset's own constructor says so when that matters
    reason = f"{type(first).__name__}: {first}".splitlines()[0][:300]
    return f"none of its {len(raw)} items can be read (the first failure: {reason}); the run would stop at its first batch"

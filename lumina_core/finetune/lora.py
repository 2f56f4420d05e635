"""LoRA on the Next-DiT trunk through peft: train, save, load, merge, export.

A LoRA adapter adds a low-rank update to a linear layer's weight:

    W' = W + s B A,    A (r, in), B (out, r),    s = alpha / r        (B starts at zero: W' = W at step 0)

:func:`apply_lora` injects peft's ``lora.Linear`` around every linear layer whose name matches one of
``LoraSettings.targets`` (regular expressions matched against the end of the module name at a dot boundary;
the defaults are the attention and FFN projections of every block), keeps the parameters
``LoraSettings.train_also`` names trainable in full (default: every task's modality adapter - patch embedder
and final layer, which LoRA on the blocks cannot reach and a new domain needs) and freezes everything else, so
an optimiser and an EMA built from :func:`lora_trainable_parameters` hold state for what the run trains only. The trunk calls
every projection through its module (``lumina_core/model/linear.py``), so the wrapped layers are really run.

Files: an adapter file is one ``.safetensors`` of the factors, keyed ``<module>.lora_A.weight`` /
``<module>.lora_B.weight`` (``<module>`` a name under :class:`~lumina_core.model.LuminaModel`, e.g.
``trunk.layers.0.attention.wqkv``), and ``<parameter>.diff`` = trained - base for each parameter trained in
full, with the settings and the trunk config in its metadata. It can be

* merged into base weights (:func:`merge_adapter_into`, :func:`load_adapters_for_sampling`, ``lumina lora
  merge``): ``W += scale * s * B A`` and ``p += scale * diff`` for each adapter, any number of adapters each
  with its own scale;
* exported to another program's LoRA layout by a registered export format (``LORA_FORMATS``, the contract in
  :mod:`lumina_core.finetune.export`; the image plugin provides ``diffusers`` and ``comfyui``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: name patterns of the default targets: every block's attention and FFN projections
DEFAULT_TARGETS: tuple[str, ...] = (
    r"attention\.wqkv",
    r"attention\.wq_y",
    r"attention\.wkv_y",
    r"attention\.wo",
    r"feed_forward\.w13",
    r"feed_forward\.w2",
)
#: name patterns adapted besides :data:`DEFAULT_TARGETS` when ``train.lora.adapt_conditioning`` is on: each
#: modulated block's adaLN projection (the conditioning vector -> the block's scales, shifts and gates) and the
#: caption embedder's projection (``cap_embedder.net.1`` in ``next_dit``, ``cap_embedder.1`` in ``unified``).
#: A full fine-tune onto a new domain moves these most (docs/lora.md, "What a LoRA run trains"); an
#: unconditional model has no caption embedder, so each may match nothing.
CONDITIONING_TARGETS: tuple[str, ...] = (
    r"(?:layers|noise_refiner)\.\d+\.adaLN_modulation\.1",
    r"cap_embedder(?:\.net)?\.1",
)
#: name patterns of what a LoRA run trains in full by default, besides the low-rank factors: every task's
#: modality adapter (patch embedder, final layer, caption projection; small). A new domain (other pixel
#: statistics, another modality's tokens) needs its input and output layers to move, and LoRA on the blocks
#: cannot reach them: frozen, a LoRA run on such data stalls (docs/lora.md, "What a LoRA run trains").
DEFAULT_TRAIN_ALSO: tuple[str, ...] = (r"adapters",)
#: patterns that may match nothing in a given model (no caption path, no modulated refiner)
OPTIONAL_TARGETS = frozenset(DEFAULT_TARGETS + CONDITIONING_TARGETS)
ADAPTER = "default"  # peft's adapter name for the adapter being trained
DIFF = ".diff"  # an adapter file's key suffix for a tensor trained in full: trained minus base
FORMAT = "lumina-lora"


@dataclass
class LoraSettings:
    """What to adapt and how.

    Attributes:
        rank: ``r``, the inner width of ``B A``.
        alpha: the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapter's input during training (peft's ``lora_dropout``).
        targets: regular expressions; a linear layer is adapted when one matches the end of its name at a
            dot boundary (``attention\\.wo`` matches ``trunk.layers.3.attention.wo``; ``layers\\.[0-5]\\..*``
            the first six blocks' linears). Default: :data:`DEFAULT_TARGETS`.
        train_also: regular expressions of modules or parameters trained in full next to the factors (peft's
            ``modules_to_save``): a parameter is trained when one matches the end of its name or of one of the
            modules holding it, at a dot boundary (``adapters`` = every task's modality adapter;
            ``final_layer``; ``adaLN_modulation``; ``norm``). They are saved (as ``trained - base``) in the
            checkpoint and the adapter file. Default: :data:`DEFAULT_TRAIN_ALSO`; ``[]``: the factors only.
    """

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    train_also: list[str] = field(default_factory=lambda: list(DEFAULT_TRAIN_ALSO))

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            problems.append(f"rank must be a positive integer, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            problems.append(f"alpha must be a positive number, got {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        self.targets = list(self.targets)
        if not self.targets:
            problems.append("targets must name at least one module pattern")
        if isinstance(self.train_also, str):
            self.train_also = [self.train_also]
        self.train_also = list(self.train_also)
        for what, pats in (("target", self.targets), ("train_also", self.train_also)):
            for pat in pats:
                try:
                    re.compile(pat)
                except (re.error, TypeError) as err:
                    problems.append(f"{what} {pat!r} is not a regular expression ({err})")
        if problems:
            raise ValueError("invalid LoRA settings: " + "; ".join(problems))

    @property
    def scale(self) -> float:
        """``alpha / rank``."""
        return float(self.alpha) / self.rank

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LoraSettings:
        """Settings from a dict (an adapter file's metadata): a file written before ``train_also`` existed
        trained the factors only, so a missing ``train_also`` reads as ``[]``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown LoRA settings {unknown}; known: {sorted(known)}")
        return cls(**{"train_also": [], **dict(values)})


# -- injection -----------------------------------------------------------------------------------------------
def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not _inside_lora(n)]


def _inside_lora(name: str) -> bool:
    return any(part in ("lora_A", "lora_B", "base_layer", "lora_dropout") for part in name.split("."))


def target_modules(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Names of the linear layers of ``model`` that one of ``patterns`` matches (see :class:`LoraSettings`);
    ValueError when a pattern matches none (naming the model's linear layers). A default pattern may match
    nothing (the optional ``wq_y`` and ``wkv_y``), as long as something is matched."""
    names = _linear_names(model)
    chosen, unused = [], []
    compiled = [(p, re.compile(rf"(?:^|\.)(?:{p})$")) for p in patterns]
    for pat, rx in compiled:
        hits = [n for n in names if rx.search(n)]
        if not hits and pat not in OPTIONAL_TARGETS:  # a default may name an optional module (wq_y, wkv_y)
            unused.append(pat)
        chosen += [n for n in hits if n not in chosen]
    if unused or not chosen:
        unused = unused or list(patterns)
        layer0 = [n for n in names if ".layers." not in n or ".layers.0." in n]
        raise ValueError(
            f"LoRA targets {unused} match no linear layer of the model; its linear layers are named like "
            f"{layer0} (and the same for every block). Targets are regular expressions matched against the end "
            "of a name (e.g. 'attention\\.wo'); a model without captions has no wkv_y/wq_y"
        )
    return [n for n in names if n in chosen]


def _lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def _inject(model: nn.Module, settings: LoraSettings, modules: list[str], adapter: str) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=modules,
        bias="none",
    )
    inject_adapter_in_model(config, model, adapter_name=adapter)


def full_parameters(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Names of the parameters of ``model`` that ``patterns`` (``LoraSettings.train_also``) select for full
    training: a pattern selects a parameter when it matches, at a dot boundary, the end of the parameter's
    name or of the name of a module holding it. LoRA factors and the adapted layers' base weights are never
    selected. ValueError when a pattern selects nothing (naming the model's top-level modules)."""
    names = [n for n, _ in model.named_parameters() if not _is_adapter(n) and ".base_layer." not in n]
    compiled = [(p, re.compile(rf"(?:^|\.)(?:{p})$")) for p in patterns]
    chosen, unused = [], []
    for pat, rx in compiled:
        hits = [n for n in names if any(rx.search(prefix) for prefix in _prefixes(n))]
        if not hits and pat not in DEFAULT_TRAIN_ALSO:  # a model without tasks has no adapters
            unused.append(pat)
        chosen += [n for n in hits if n not in chosen]
    if unused:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(
            f"LoRA train_also {unused} match no parameter of the model (patterns are matched against the end of "
            f"a parameter's or module's name, e.g. 'adapters', 'final_layer', 'adaLN_modulation'); its top-level "
            f"modules are {tops}"
        )
    return [n for n in names if n in chosen]


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


#: attribute of a model under :func:`apply_lora`: the base values of its ``train_also`` parameters
_BASE = "_lora_full_base"


def apply_lora(model: nn.Module, settings: LoraSettings | None = None) -> list[str]:
    """Inject a LoRA adapter (peft) into the linear layers ``settings.targets`` select, keep the parameters
    ``settings.train_also`` selects trainable (trained in full) and freeze every other parameter; returns the
    adapted module names. The adapter starts as a no-op (``B = 0``); the base values of the fully trained
    parameters are kept (on the CPU) so that an adapter file can store ``trained - base``."""
    settings = settings or LoraSettings()
    if _lora_layers(model):
        raise ValueError("the model already carries LoRA adapters; merge them (merge_lora) before adding another")
    modules = target_modules(model, settings.targets)
    full = set(full_parameters(model, settings.train_also))
    _inject(model, settings, modules, ADAPTER)
    for name, p in model.named_parameters():
        p.requires_grad_(_is_adapter(name) or name in full)
    model.__dict__[_BASE] = {n: _copy(p) for n, p in model.named_parameters() if n in full}
    return modules


def _copy(p: Tensor) -> Tensor:
    """A detached copy on the CPU (on the meta device for a model built there, e.g. to count memory)."""
    return p.detach().clone() if p.is_meta else p.detach().cpu().clone()


def _is_adapter(param_name: str) -> bool:
    return ".lora_A." in param_name or ".lora_B." in param_name


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The live LoRA factors (peft names ``...lora_A.default.weight`` / ``lora_B``)."""
    return {n: p for n, p in model.named_parameters() if _is_adapter(n)}


def lora_trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Everything a LoRA run trains after :func:`apply_lora`: the factors and the parameters ``train_also``
    selects (trained in full). What the optimiser and the EMA should hold."""
    full = model.__dict__.get(_BASE, {})
    return {n: p for n, p in model.named_parameters() if _is_adapter(n) or n in full}


def stop_full_training(model: nn.Module, names: Sequence[str]) -> None:
    """Freeze parameters :func:`apply_lora` kept trainable for ``train_also`` (e.g. to load a run trained
    before ``train_also`` existed, which trained the factors only): they are no longer trained or saved."""
    base = model.__dict__.get(_BASE, {})
    params = dict(model.named_parameters())
    for name in names:
        params[name].requires_grad_(False)
        base.pop(name, None)


def full_state(model: nn.Module) -> dict[str, Tensor]:
    """``{name + '.diff': trained - base}`` of the parameters trained in full (``train_also``) of a model under
    :func:`apply_lora` (on the CPU, float32-exact in the parameter's dtype); ``{}`` when there are none."""
    base = model.__dict__.get(_BASE, {})
    params = dict(model.named_parameters())
    return {n + DIFF: (params[n].detach().cpu().float() - b.float()).to(b.dtype) for n, b in base.items()}


def adapter_state(model: nn.Module, adapter: str = ADAPTER) -> dict[str, Tensor]:
    """Copies of the adapter's factors, keyed ``<module>.lora_A.weight`` / ``<module>.lora_B.weight``."""
    out = {}
    for name, layer in _lora_layers(model).items():
        if adapter in layer.lora_A:
            out[f"{name}.lora_A.weight"] = layer.lora_A[adapter].weight.detach().clone()
            out[f"{name}.lora_B.weight"] = layer.lora_B[adapter].weight.detach().clone()
    if not out:
        raise ValueError(f"the model carries no LoRA adapter {adapter!r} (apply_lora first)")
    return out


def load_adapter_state(model: nn.Module, state: dict[str, Tensor], adapter: str = ADAPTER) -> None:
    """Copy factors saved by :func:`adapter_state` into the model's injected adapter (every key must match)."""
    have = adapter_state(model, adapter)
    missing, unexpected = sorted(set(have) - set(state)), sorted(set(state) - set(have))
    bad = [f"{k}: model {tuple(have[k].shape)}, file {tuple(state[k].shape)}" for k in have
           if k in state and state[k].shape != have[k].shape]
    if missing or unexpected or bad:
        raise ValueError(
            f"LoRA factors do not fit the model's adapter: missing {missing[:6] or 'none'}, unexpected "
            f"{unexpected[:6] or 'none'}, shapes {bad[:6] or 'fine'}"
        )
    layers = _lora_layers(model)
    with torch.no_grad():
        for key, value in state.items():
            module, factor = key.rsplit(".", 2)[0], key.rsplit(".", 2)[1]
            getattr(layers[module], factor)[adapter].weight.copy_(value)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every active adapter into its base weight (``W += s B A``) and remove the LoRA layers: the model is
    plain again (same modules and state-dict keys as before :func:`apply_lora`, all parameters trainable) and
    computes what the adapted model computed (in eval mode: dropout off)."""
    layers = _lora_layers(model)
    if not layers:
        raise ValueError("the model carries no LoRA adapter to merge")
    for name, layer in layers.items():
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer.get_base_layer())
    for p in model.parameters():
        p.requires_grad_(True)
    model.__dict__.pop(_BASE, None)
    return model


# -- files ---------------------------------------------------------------------------------------------------
@dataclass
class AdapterFile:
    """An adapter read from disk: factors, settings, the trunk config it was trained on, other metadata."""

    state: dict[str, Tensor]
    settings: LoraSettings
    model_config: dict[str, Any] | None
    meta: dict[str, Any]
    #: ``{parameter name: trained - base}`` of the parameters trained in full (``settings.train_also``)
    diffs: dict[str, Tensor] = field(default_factory=dict)

    @property
    def modules(self) -> list[str]:
        return sorted({k.rsplit(".", 2)[0] for k in self.state})

    def factors(self, module: str) -> tuple[Tensor, Tensor]:
        return self.state[f"{module}.lora_A.weight"], self.state[f"{module}.lora_B.weight"]


def save_adapter(
    path: str | Path, model: nn.Module, settings: LoraSettings, meta: dict[str, Any] | None = None
) -> Path:
    """Write the model's adapter to ``path`` (``.safetensors``): the factors, and ``<name>.diff`` = trained -
    base for each parameter trained in full (``settings.train_also``), with the settings, the trunk config
    (``model.config``) and ``meta`` in the file's metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"an adapter file ends in .safetensors; got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in adapter_state(model).items()}
    state.update({k: v.contiguous() for k, v in full_state(model).items()})
    config = getattr(model, "config", None)
    header = {
        "format": FORMAT,
        "settings": json.dumps(settings.to_dict()),
        "model": json.dumps(config.to_dict() if hasattr(config, "to_dict") else None),
        "meta": json.dumps(meta or {}, default=str),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=header)
    tmp.replace(path)
    return path


def read_adapter(path: str | Path) -> AdapterFile:
    """Read an adapter file written by :func:`save_adapter`; clear errors for anything else."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no LoRA adapter file at {path} (expected a .safetensors written by Lumina)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise ValueError(f"{path} cannot be read as safetensors ({exc}): not an adapter file, or damaged") from exc
    if header.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a Lumina LoRA adapter (its metadata format is {header.get('format')!r}, expected "
            f"{FORMAT!r}); diffusers or ComfyUI LoRA files are outputs of `lumina lora export`, not inputs"
        )
    settings = LoraSettings.from_dict(json.loads(header.get("settings", "{}")))
    problems = []
    diffs = {k[: -len(DIFF)]: state.pop(k) for k in list(state) if k.endswith(DIFF)}
    for key in state:
        if not key.endswith((".lora_A.weight", ".lora_B.weight")):
            problems.append(f"unexpected tensor {key!r}")
    adapter = AdapterFile(
        state, settings, json.loads(header.get("model", "null")), json.loads(header.get("meta", "{}")), diffs
    )
    for module in adapter.modules:
        a, b = state.get(f"{module}.lora_A.weight"), state.get(f"{module}.lora_B.weight")
        if a is None or b is None:
            problems.append(f"{module} lacks its {'lora_A' if a is None else 'lora_B'} factor")
        elif a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            problems.append(f"{module}: A {tuple(a.shape)} and B {tuple(b.shape)} are not (r, in) and (out, r)")
    if problems:
        raise ValueError(f"damaged LoRA adapter {path}: " + "; ".join(problems[:6]))
    return adapter


def _adapter(adapter: str | Path | AdapterFile) -> AdapterFile:
    return adapter if isinstance(adapter, AdapterFile) else read_adapter(adapter)


def load_adapter(model: nn.Module, adapter: str | Path | AdapterFile) -> list[str]:
    """Inject the adapter's LoRA layers (its settings, its modules) into a plain ``model`` and load its
    factors, for further training or unmerged use; returns the adapted module names. The base is frozen."""
    adapter = _adapter(adapter)
    _check_config(model, adapter)
    if _lora_layers(model):
        raise ValueError("the model already carries LoRA adapters; merge them (merge_lora) before loading another")
    missing = sorted(set(adapter.modules) - set(_linear_names(model)))
    if missing:
        raise ValueError(f"the adapter adapts modules the model lacks: {missing[:6]}")
    params = dict(model.named_parameters())
    absent = sorted(set(adapter.diffs) - set(params))
    if absent:
        raise ValueError(f"the adapter trained parameters the model lacks: {absent[:6]}")
    _inject(model, adapter.settings, adapter.modules, ADAPTER)
    for name, p in model.named_parameters():
        p.requires_grad_(_is_adapter(name) or name in adapter.diffs)
    model.__dict__[_BASE] = {n: _copy(params[n]) for n in adapter.diffs}
    load_adapter_state(model, adapter.state)
    with torch.no_grad():
        for name, diff in adapter.diffs.items():
            params[name].copy_((params[name].float() + diff.to(params[name].device).float()).to(params[name].dtype))
    return adapter.modules


#: trunk settings an adapter must share with the model it is applied to
_SHAPE_FIELDS = ("dim", "n_layers", "n_heads", "n_kv_heads", "context_dim", "multiple_of", "ffn_dim_multiplier",
                 "separate_cross_query")


def _check_config(model: nn.Module, adapter: AdapterFile) -> None:
    config = getattr(model, "config", None)
    if adapter.model_config is None or not hasattr(config, "to_dict"):
        return
    have, want = adapter.model_config, config.to_dict()
    diff = [f"{k}: adapter {have.get(k)!r}, model {want.get(k)!r}" for k in _SHAPE_FIELDS if have.get(k) != want.get(k)]
    if diff:
        raise ValueError("the LoRA adapter was trained on a different trunk: " + "; ".join(diff))


def merge_adapter_into(
    weights: dict[str, Tensor], adapter: str | Path | AdapterFile, scale: float = 1.0, prefix: str = ""
) -> dict[str, Tensor]:
    """``weights[prefix + module + '.weight'] += scale * s * B A`` for every module of the adapter, and
    ``weights[prefix + name] += scale * diff`` for every parameter it trained in full (a new dict; the sums in
    fp32, stored in each weight's dtype). ``prefix``: ``"model."`` for a training checkpoint's weights, ``""``
    for a LuminaModel state dict."""
    adapter = _adapter(adapter)
    out = dict(weights)
    missing = [m for m in adapter.modules if prefix + m + ".weight" not in out]
    missing += [n for n in adapter.diffs if prefix + n not in out]
    if missing:
        raise ValueError(
            f"the base weights lack the adapted modules or parameters {missing[:6]} (keys {prefix!r}<module>.weight)"
        )
    s = float(scale) * adapter.settings.scale
    if not math.isfinite(s):
        raise ValueError(f"LoRA scale {scale!r} is not a finite number: the merged weights would be NaN")
    for module in adapter.modules:
        key = prefix + module + ".weight"
        a, b = adapter.factors(module)
        w = out[key]
        if w.shape != (b.shape[0], a.shape[1]):
            raise ValueError(f"{key} is {tuple(w.shape)}; the adapter's B A is {(b.shape[0], a.shape[1])}")
        out[key] = (w.float() + s * (b.float() @ a.float()).to(w.device)).to(w.dtype)
        if not bool(torch.isfinite(out[key]).all()):
            raise ValueError(
                f"merging the LoRA adapter with scale {scale:g} makes {key} non-finite (NaN or infinity: the update "
                f"overflows {w.dtype}); use a smaller scale"
            )
    for name, diff in adapter.diffs.items():
        w = out[prefix + name]
        if w.shape != diff.shape:
            raise ValueError(f"{prefix + name} is {tuple(w.shape)}; the adapter's difference is {tuple(diff.shape)}")
        out[prefix + name] = (w.float() + float(scale) * diff.to(w.device).float()).to(w.dtype)
        if not bool(torch.isfinite(out[prefix + name]).all()):
            raise ValueError(
                f"merging the LoRA adapter with scale {scale:g} makes {prefix + name} non-finite (NaN or infinity: "
                f"the update overflows {w.dtype}); use a smaller scale"
            )
    return out


def load_adapters_for_sampling(
    model: nn.Module, adapters: Sequence[tuple[str | Path | AdapterFile, float]]
) -> nn.Module:
    """Merge adapters, each ``(path, scale)``, into a plain model's weights in place (``W += scale * s * B A``,
    summed over the adapters): the model then samples at full speed on the trunk's fast route. Returns it."""
    if _lora_layers(model):
        raise ValueError("the model carries injected LoRA layers; merge_lora it first, or pass a plain model")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for source, scale in adapters:
            adapter = _adapter(source)
            _check_config(model, adapter)
            keys = [m + ".weight" for m in adapter.modules] + list(adapter.diffs)
            merged = merge_adapter_into({k: params[k] for k in keys if k in params}, adapter, scale)
            for key, value in merged.items():
                params[key].copy_(value)
    return model


def parse_adapter_arg(text: str, option: str = "--lora") -> tuple[str, float]:
    """``"PATH[:SCALE]"`` -> ``(PATH, SCALE)`` (scale 1 when absent), as ``--lora`` takes it (``option``
    names the argument in messages).

    ``SCALE`` must be a finite number: ``nan`` or ``inf`` would turn every merged weight into NaN (black
    images, a checkpoint of NaNs), so they are refused here, before anything is read. A tail after the last
    ``:`` that is not a number is an error when what comes before it names an adapter file (an existing file
    or a ``.safetensors`` name); otherwise the whole text is the path (``C:/x/lora.safetensors``)."""
    path, sep, tail = text.rpartition(":")
    if not (sep and path):
        return text, 1.0
    try:
        scale = float(tail)
    except ValueError:
        if Path(text).is_file() or not (Path(path).is_file() or path.endswith(".safetensors")):
            return text, 1.0
        raise ValueError(
            f"{option} {text}: the scale {tail!r} after the last ':' is not a number; expected ADAPTER[:SCALE] "
            "with SCALE a finite number such as 0.8 or -1 (1 when left out)"
        ) from None
    if not math.isfinite(scale):
        raise ValueError(
            f"{option} {text}: the scale {tail!r} is not a finite number; a non-finite scale turns every adapted "
            "weight into NaN or infinity. Give a number such as 0.8 or -1 (1 when left out)"
        )
    return path, scale

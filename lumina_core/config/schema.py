"""The recipe schema. A recipe is OmegaConf YAML; these dataclasses are its authoritative shape.

Every recipe names a list of *tasks*; a single-task recipe is a list of one. A task is
modality + data + objective + conditioning + weight (+ how to sample and evaluate it). All tasks share one
trunk (``model``); each task gets its own adapter (input projection, pad token, final layer, RoPE split).

Registered components are referenced as ``{name: <registered name>, params: {...}}`` (a ``Component``);
their ``params`` are validated against the registered constructor's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Component:
    """A registered component by name, with keyword arguments for its constructor."""

    name: str = "???"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    name: str = "run"
    output_dir: str = "runs/${run.name}"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"


@dataclass
class ModelConfig:
    """The shared Next-DiT trunk. ``preset`` picks a row of the size table; explicit fields override it."""

    preset: str | None = None
    dim: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    context_dim: int | None = None  # None: taken from the first task's conditioner (its output width)
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    qk_norm: bool = True
    grad_checkpointing: bool = False


@dataclass
class DataConfig:
    """A registered dataset plus loader settings. ``val_params`` override ``params`` for the held-out split."""

    name: str = "???"
    params: dict[str, Any] = field(default_factory=dict)
    val_params: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    num_workers: int = 0


@dataclass
class ConditioningConfig:
    """How the task is conditioned: a registered conditioner (text encoder, class table, none)."""

    encoder: Component = field(default_factory=lambda: Component(name="none"))
    drop_prob: float = 0.1  # classifier-free guidance training: drop the condition with this probability
    cache: bool = False  # cache encoded features of the dataset's conditions (frozen encoders only)


@dataclass
class SamplingConfig:
    """Defaults chosen from the solver x grid table in docs/benchmarks.md (AB2 on the sigmoid grid, dense at
    both ends); released image checkpoints want midpoint on shift(4) instead (see lumina_next_2b.yaml).

    Component defaults carry no ``params``: OmegaConf merges a recipe's node into the default, so default
    params would leak into whatever component a recipe names instead."""

    solver: str = "ab2"
    grid: Component = field(default_factory=lambda: Component(name="sigmoid"))
    steps: int = 16
    cfg_scale: float = 1.0
    cfg_channels: int | None = None  # None: guide all channels; 3 reproduces the released pipeline
    rope_scaling: Component | None = None
    #: pooled self-attention keys/values (``lumina_core.model.context_drop.ContextDrop``): a mapping
    #: ``{factor, until, schedule, layers}``; None: off
    context_drop: dict[str, Any] | None = None
    seed: int = 0


@dataclass
class EvalConfig:
    num_samples: int = 16
    batch_size: int = 16
    # one dataset parameter and the values to evaluate at, e.g. {size: [16, 32, 64]}: metrics per value
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskConfig:
    name: str = "???"
    modality: Component = field(default_factory=Component)
    data: DataConfig = field(default_factory=DataConfig)
    objective: Component = field(default_factory=lambda: Component(name="flow_matching"))
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    weight: float = 1.0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # "constant" | "cosine" (after warm-up)
    grad_clip: float = 2.0
    ema_decay: float = 0.9999
    precision: str = "32-true"  # Lightning precision: "32-true" | "bf16-mixed" | ...
    log_every: int = 10
    ckpt_every: int = 200
    preview_every: int = 0  # 0: previews only at the end
    skip_nonfinite: bool = False  # True: skip steps whose loss is not finite (counted) instead of stopping
    compile: bool = False
    threads: int | None = None  # torch.set_num_threads; None leaves the default


@dataclass
class RecipeConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = field(default_factory=list)
    train: TrainConfig = field(default_factory=TrainConfig)

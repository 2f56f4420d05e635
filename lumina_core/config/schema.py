"""The recipe schema. A recipe is OmegaConf YAML; these dataclasses are its authoritative shape.

Every recipe names a list of *tasks*; a single-task recipe is a list of one. A task is
modality + data + objective + conditioning + weight (+ how to sample and evaluate it). All tasks share one
trunk (``model``); each task gets its own adapter (input projection, pad token, final layer, RoPE split).

Registered components are referenced as ``{name: <registered name>, params: {...}}`` (a ``Component``);
their ``params`` are validated against the registered constructor's signature. A field that holds one
says which registry names it (:func:`registered`), and a mapping that builds a typed object says which
(:func:`builds`): validation walks the schema and reads these, so no config path is special to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: the values of ``train.mixing`` (see TrainConfig.mixing and lumina_core.training.data)
MIXING_MODES = ("all", "weighted")
#: the values of ``train.strategy``
STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass
class Component:
    """A registered component by name, with keyword arguments for its constructor."""

    name: str = "???"
    params: dict[str, Any] = field(default_factory=dict)


def registered(registry: str, default: Callable[[], Any] | None = None) -> Any:
    """A schema field holding a :class:`Component` (or a list of them, or None) named in the registry
    ``lumina_core.registry.<registry>``; ``default`` makes its default value (None: the field defaults to None)."""
    meta = {"registry": registry}
    if default is None:
        return field(default=None, metadata=meta)
    return field(default_factory=default, metadata=meta)


def builds(target: str) -> Any:
    """A schema field holding a mapping (or None, its default) of the keyword arguments of ``target``
    (``"module:Class"``; validated against its signature and built with ``Class.build`` when it has one)."""
    return field(default=None, metadata={"builds": target})


@dataclass
class RunConfig:
    name: str = "run"  # the run's name: the default run folder and sample folder
    output_dir: str = "runs/${run.name}"  # the run folder: config, checkpoints, previews, logs, metrics
    seed: int = 0  # seeds everything: initialisation, data order, noise, times, condition dropout
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"


@dataclass
class ModelConfig:
    """The shared Next-DiT trunk. ``preset`` picks a row of the size table; explicit fields override it."""

    preset: str | None = None  # a row of the trunk size table (tiny, small, base, large, 600M, 2B); the fields below override it
    dim: int | None = None  # trunk width (divisible by n_heads)
    n_layers: int | None = None  # Next-DiT blocks
    n_heads: int | None = None  # attention heads
    n_kv_heads: int | None = None  # key/value heads (grouped-query attention; None: n_heads)
    #: the trunk's caption width; None: the first conditioned task's conditioner width. A task whose conditioner
    #: is narrower or wider gets its own projection to this width (adapters.<task>.context_proj)
    context_dim: int | None = None
    multiple_of: int = 256  # the SwiGLU hidden width is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None  # scales the SwiGLU hidden width (released 2B: None)
    norm_eps: float = 1e-5  # RMSNorm epsilon
    qk_norm: bool = True  # normalise queries and keys (Lumina-Next's QK-norm)
    grad_checkpointing: bool = False  # recompute each block in the backward pass (less memory, more time)
    #: cross-attention with its own query projection (diffusers models fine-tuned in diffusers have one; the
    #: released model shares the self-attention query)
    separate_cross_query: bool = False
    #: the trunk family: next_dit (Lumina-Next, cross-attention to the caption) or unified (Lumina-Image 2.0:
    #: caption and noisy tokens in one self-attention sequence; docs/lumina2.md). None: the preset's, else next_dit
    #: (these unified settings default to None so that a preset such as lumina2 is not overridden by a default)
    family: str | None = None
    n_refiner_layers: int | None = None  # unified: context-refiner and noise-refiner blocks (None: 2, as released)
    caption_rope_fraction: float | None = None  # unified: share of each head's RoPE pairs on the caption axis (None: 1/3)
    qk_norm_eps: float | None = None  # unified: per-head q/k RMSNorm epsilon (None: norm_eps)
    unified_variant: str | None = None  # unified: lumina2 ([caption | tokens], the default) or z_image (Z-Image's sequence layout)


@dataclass
class DataConfig:
    """A registered dataset plus loader settings. ``val_params`` override ``params`` for the held-out split."""

    name: str = "???"  # a registered dataset (`lumina plugins list --kind dataset`)
    params: dict[str, Any] = field(default_factory=dict)  # its constructor keywords (split is passed for you)
    val_params: dict[str, Any] = field(default_factory=dict)  # merged over params for the val split
    batch_size: int = 16  # samples per step for this task
    num_workers: int = 0  # DataLoader worker processes


@dataclass
class ConditioningConfig:
    """How the task is conditioned: a registered conditioner (text encoder, class table, none)."""

    #: minilm, hf, class or none
    encoder: Component = registered("CONDITIONERS", lambda: Component(name="none"))
    drop_prob: float = 0.1  # classifier-free guidance training: drop the condition with this probability
    cache: bool = False  # cache encoded features of the dataset's conditions (frozen encoders only)


@dataclass
class SamplingConfig:
    """Defaults chosen from the solver x grid table in docs/benchmarks.md (AB2 on the sigmoid grid, dense at
    both ends); released image checkpoints want midpoint on shift(4) instead (see lumina_next_2b.yaml).

    Component defaults carry no ``params``: OmegaConf merges a recipe's node into the default, so default
    params would leak into whatever component a recipe names instead."""

    #: a registered ODE solver (euler, midpoint, heun, ab2, rk4, dopri5, ...); a bare name is short for {name: ...}
    solver: Component = registered("SOLVERS", lambda: Component(name="ab2"))
    grid: Component = registered("TIME_GRIDS", lambda: Component(name="sigmoid"))  # the time grid of the steps
    steps: int = 16  # solver steps
    cfg_scale: float = 1.0  # classifier-free guidance scale (1: no guidance)
    cfg_channels: int | None = None  # None: guide all channels; k: the sample's first k channels (the plugin's guidance_mask)
    cfg_trunc: float = 1.0  # guidance only while the flow time t < cfg_trunc (0 noise, 1 data); 1: throughout
    #: None: off; r > 0: the guided velocity's norm per sample clipped to r x the conditional one's (Lumina-Image 2.0)
    cfg_renorm: float | None = None
    rope_scaling: Component | None = registered("ROPE_SCALINGS")  # RoPE scaling for sizes beyond training (ntk, pi, ...); null: none
    #: pooled self-attention keys/values (``lumina_core.model.context_drop.ContextDrop``): a mapping
    #: ``{factor, until, schedule, layers}``; None: off
    context_drop: dict[str, Any] | None = builds("lumina_core.model.context_drop:ContextDrop")
    seed: int = 0  # seed of the sampling noise
    #: "fp32" | "bf16" | "auto" (bf16 where the device computes it natively: CUDA, CPUs with AVX-512 BF16 / AMX):
    #: the model's precision while sampling (the integration stays fp32)
    precision: str = "fp32"


@dataclass
class EvalConfig:
    num_samples: int = 16  # held-out items generated and scored by `lumina eval`
    batch_size: int = 16  # samples generated at once (sampling and evaluation)
    # one dataset parameter and the values to evaluate at, e.g. {size: [16, 32, 64]}: metrics per value
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskConfig:
    name: str = "???"  # unique within the recipe; names metrics, previews and checkpoint keys
    modality: Component = registered("MODALITIES", Component)  # a registered modality plugin and its parameters
    data: DataConfig = field(default_factory=DataConfig)
    objective: Component = registered("OBJECTIVES", lambda: Component(name="flow_matching"))  # the training loss
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    loss_weight: float = 1.0  # this task's loss is multiplied by it before the step's task losses are summed
    draw_weight: float = 1.0  # train.mixing=weighted: how often this task is drawn (relative to the others' draw_weight)
    #: the final layer predicts 2 x the token width (the released image model's "learn sigma" head); only the
    #: first half is the velocity. Set it to load released or diffusers checkpoints that have that head
    learn_sigma: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class LoraConfig:
    """LoRA fine-tuning through peft (lumina_core/finetune/lora.py): the base weights are frozen, the optimiser,
    the EMA and the checkpoints hold the adapter only."""

    rank: int = 16  # r, the inner width of the update B A
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # dropout on the adapter's input while training
    #: regular expressions matched against the end of linear layers' names; None: every block's attention and
    #: feed-forward projections
    targets: list[str] | None = None
    #: with targets None, also adapt the conditioning paths: each modulated block's adaLN projection and the
    #: caption embedder's projection (a domain change moves them most: docs/lora.md, "What closes the gap");
    #: a recipe that names its targets gets exactly those
    adapt_conditioning: bool = True
    #: modules or parameters trained in full next to the factors (regular expressions matched against the end
    #: of their names); None: every task's modality adapter (patch embedder, final layer); []: factors only
    train_also: list[str] | None = None
    #: learning rate of the factors A (None: train.lr); what train_also trains in full keeps train.lr
    lr: float | None = None
    #: LoRA+: the factors B learn at lr_ratio times A's learning rate (1: the same); 16 learns a domain change
    #: much faster at equal steps (docs/lora.md, "What closes the gap")
    lr_ratio: float = 16.0


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimiser steps in all (a resumed run counts from its checkpoint)
    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    #: "adamw" | "adamw8bit" | "paged_adamw8bit": the last two keep AdamW's states in 8 bits through bitsandbytes
    #: (CUDA GPUs only; bitsandbytes is not a dependency: pip install it yourself)
    optimizer: str = "adamw"
    warmup_steps: int = 0  # linear learning-rate warm-up
    lr_schedule: str = "constant"  # "constant" | "cosine" (after warm-up)
    grad_clip: float = 2.0  # gradient-norm clipping (0: off)
    ema_decay: float = 0.9999  # EMA of the weights used by previews, sampling and evaluation, in [0, 1)
    precision: str = "32-true"  # Lightning precision: "32-true" | "bf16-mixed" | ...
    log_every: int = 10  # steps between console lines and TensorBoard scalars
    ckpt_every: int = 200  # steps between checkpoints (one is always written at the end and on SIGTERM)
    preview_every: int = 0  # 0: previews only at the end
    skip_nonfinite: bool = False  # True: skip steps whose loss is not finite (counted) instead of stopping
    max_consecutive_skips: int = 10  # with skip_nonfinite: stop after this many non-finite steps in a row
    max_skipped_steps: int = 100  # with skip_nonfinite: stop after this many non-finite steps in all
    compile: bool = False  # torch.compile the trunk
    #: start from these weights (EMA): a run's checkpoint folder or a `lumina convert`ed released / diffusers
    #: checkpoint; the optimiser, schedule and step start fresh. None: random initialisation
    init_from: str | None = None
    lora: LoraConfig | None = None  # LoRA fine-tuning of the init_from weights; None: train every weight
    devices: int = 1  # processes (GPUs, or CPU processes) per node; > 1 trains data-parallel
    num_nodes: int = 1  # machines (torchrun / SLURM give the rest)
    #: "auto" (one device: none; several: ddp), "ddp" or "fsdp" (torch's FSDP2: each Next-DiT block sharded
    #: across the processes, the EMA sharded with it; CPU with gloo or GPUs; docs/distributed.md)
    strategy: str = "auto"
    fsdp_shard_encoders: bool = False  # with fsdp: shard frozen text encoders too (default: a copy on every rank)
    #: how the tasks share the steps: "all" (every step takes one batch of data.batch_size from every task - a
    #: fixed per-step composition) or "weighted" (every step takes one batch from one task, drawn with the
    #: tasks' draw_weight from the run's seed, the same on every rank and after a resume)
    mixing: str = "all"
    #: how the tasks share the trunk beyond the mixing (docs/multitask.md): registered composition methods,
    #: applied in order - plain, loss_norm, grad_norm, pcgrad (mixing all), task_embedding, task_modulation,
    #: task_lora, shared_start, temperature and task_moments (mixing weighted). [] is the plain sum of the
    #: weighted task losses
    composition: list[Component] = registered("COMPOSITIONS", list)
    #: every N steps log each task's loss and gradient norm on the shared trunk, the cosines between the tasks'
    #: trunk gradients, and the learning rate and trunk update each task got (TensorBoard diag/*, and
    #: <run_dir>/diagnostics.jsonl); 0: off. Costs one forward and backward per task every N steps
    diagnostics_every: int = 0
    threads: int | None = None  # torch.set_num_threads; None leaves the default


@dataclass
class RecipeConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = field(default_factory=list)
    train: TrainConfig = field(default_factory=TrainConfig)

"""LuminaModel: one shared trunk (family ``config.family``: ``next_dit`` or ``unified``), one adapter per task.

    out = adapter.final(trunk(adapter.embed(tokens), t, condition, adapter.rope(positions)))   # (B, L, out_dim)

The first ``in_dim`` output channels are the velocity, in the same order as the input tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lumina_core.model.adapter import FinalLayer, ModalityAdapter
from lumina_core.model.attention import Attention
from lumina_core.model.config import PRESETS, NextDiTConfig
from lumina_core.model.context_drop import ContextDrop
from lumina_core.model.embedders import CaptionEmbedder, TimestepEmbedder
from lumina_core.model.family import TrunkBlock, build_trunk
from lumina_core.model.rope import RopeScaling
from lumina_core.model.task_parts import TaskBlockParts
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch


class LuminaModel(nn.Module):
    def __init__(
        self,
        config: NextDiTConfig,
        tasks: dict[str, AdapterSpec] | None = None,
        context_dims: dict[str, int | None] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.trunk = build_trunk(config)
        self.adapters = nn.ModuleDict()
        self.heads = nn.ModuleDict()  # per-task heads owned by objectives (empty for flow matching)
        self.initialize_weights(self.trunk)
        for name, spec in (tasks or {}).items():
            self.add_task(name, spec, (context_dims or {}).get(name))

    # -- tasks -------------------------------------------------------------------------------------------
    def add_task(self, name: str, spec: AdapterSpec, context_dim: int | None = None) -> ModalityAdapter:
        """Add a task with a freshly initialised adapter (on the trunk's device and dtype). ``context_dim``: the
        width of the task's condition features; when it differs from the trunk's ``context_dim`` the adapter
        projects them (a text encoder, a class table and an unconditional task can share one trunk)."""
        if name in self.adapters:
            raise ValueError(f"task {name!r} already exists; tasks: {sorted(self.adapters)}")
        cfg = self.config
        adapter = ModalityAdapter(
            spec, cfg.dim, cfg.cond_dim, cfg.head_dim, context_dim, cfg.context_dim, rope=self.trunk.task_rope(spec)
        )
        self.initialize_weights(adapter)
        self.adapters[name] = self._like_trunk(adapter)
        return self.adapters[name]

    def add_head(self, name: str, head: nn.Module) -> nn.Module:
        """Attach an objective's trainable head to task ``name`` (saved, averaged and optimised with the model)."""
        if name not in self.adapters:
            raise ValueError(f"cannot add a head to unknown task {name!r}; tasks: {self.tasks}")
        if name in self.heads:
            raise ValueError(f"task {name!r} already has a head")
        self.heads[name] = self._like_trunk(head)
        return self.heads[name]

    def _like_trunk(self, part: nn.Module) -> nn.Module:
        """``part`` moved to the trunk's device and dtype: a part added later (a task's adapter, an objective's
        head) follows a model that was already moved or cast."""
        ref = next(self.trunk.parameters())
        return part.to(device=ref.device, dtype=ref.dtype)

    @property
    def tasks(self) -> list[str]:
        return list(self.adapters)

    def _adapter(self, task: str | None) -> ModalityAdapter:
        if task is None:
            if len(self.adapters) != 1:
                raise ValueError(
                    f"task must be named when the model has {len(self.adapters)} tasks: {self.tasks}"
                )
            task = self.tasks[0]
        if task not in self.adapters:
            raise ValueError(f"unknown task {task!r}; tasks: {self.tasks}")
        return self.adapters[task]

    # -- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        batch: TokenBatch,
        t: Tensor | float,
        cond: Condition | None = None,
        task: str | None = None,
        rope_scaling: RopeScaling | dict | str | None = None,
        context_drop: ContextDrop | dict | None = None,
    ) -> Tensor:
        """(B, L, out_dim) prediction for a token batch at flow time ``t`` ((B,), scalar, in [0, 1]).

        ``context_drop`` pools self-attention keys and values of grid tokens (see :mod:`.context_drop`)."""
        h, c = self.encode(batch, t, cond, task=task, rope_scaling=rope_scaling, context_drop=context_drop)
        return self._adapter(task).final_layer(h, c)

    def encode(
        self,
        batch: TokenBatch,
        t: Tensor | float,
        cond: Condition | None = None,
        task: str | None = None,
        rope_scaling: RopeScaling | dict | str | None = None,
        context_drop: ContextDrop | dict | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The trunk's hidden tokens (B, L, dim) and conditioning vector ``c`` (B, cond_dim), before the
        task's final layer: what an objective with its own head (e.g. classification) reads."""
        adapter = self._adapter(task)
        spec = adapter.spec
        if batch.num_axes != spec.num_axes:
            raise ValueError(
                f"positions must have {spec.num_axes} axes for this task; got {batch.num_axes} "
                f"(positions shape {tuple(batch.positions.shape)})"
            )
        b = batch.batch_size
        t = torch.as_tensor(t, dtype=torch.float32, device=batch.tokens.device)
        if t.dim() == 0:
            t = t.expand(b)
        if tuple(t.shape) != (b,):
            raise ValueError(f"t must be a scalar or have shape ({b},); got {tuple(t.shape)}")
        y = y_mask = None
        if cond is not None and cond.context is not None:
            if cond.context.shape[0] != b:
                raise ValueError(f"condition batch size {cond.context.shape[0]} != token batch size {b}")
            y, y_mask = adapter.project_context(cond.context), cond.mask
        x = adapter.embed(batch.tokens, batch.mask, batch.token_cond)
        scaling = RopeScaling.build(rope_scaling)
        shift = getattr(adapter, "task_embedding", None)  # train.composition task_embedding: added to c
        # the task's own block parts (train.composition task_modulation, task_lora), passed only when it has
        # some: a family that takes none need not take the keyword
        parts = TaskBlockParts.of_adapter(adapter)
        extra = {} if parts is None else {"task_parts": parts}
        return self.trunk.encode_tokens(
            x, batch.mask, batch.positions, t, y, y_mask, adapter.rope, scaling, context_drop, c_shift=shift, **extra
        )

    def velocity(
        self,
        batch: TokenBatch,
        t: Tensor | float,
        cond: Condition | None = None,
        task: str | None = None,
        rope_scaling: RopeScaling | dict | str | None = None,
        context_drop: ContextDrop | dict | None = None,
    ) -> Tensor:
        """(B, L, in_dim): the first ``in_dim`` output channels."""
        out = self(batch, t, cond, task=task, rope_scaling=rope_scaling, context_drop=context_drop)
        return out[..., : self._adapter(task).spec.in_dim]

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.trunk.grad_checkpointing = enabled

    # -- initialisation, all in one place -------------------------------------------------------------------
    def initialize_weights(self, part: nn.Module | None = None) -> None:
        """(Re-)initialise ``part`` (default: the whole model; ``__init__`` and :meth:`add_task` call it on the
        trunk and on each new adapter). Objectives' heads initialise themselves and are left alone.

        Xavier-uniform linears with zero biases; zero modulation, gates, caption projection and final layer
        (every block starts as the identity and the model predicts zero); N(0, 0.02) time MLP and pad token;
        the per-token conditioning MLP's last layer zero (a task with token conditions starts unconditioned).
        """
        parts = [part] if part is not None else [self.trunk, *self.adapters.values()]
        for p in parts:
            p.apply(_init_module)

    @classmethod
    def count_parameters(cls, config: NextDiTConfig, adapters: dict[str, Any] | None = None) -> int:
        """Number of parameters of a model with this trunk and these adapter specs.

        Instantiated on the meta device, so the count is exact and free even for the 2B preset.
        ``adapters`` maps task names to :class:`AdapterSpec` (or dicts of its fields); None counts the trunk.
        """
        specs = {
            k: v if isinstance(v, AdapterSpec) else AdapterSpec(**v) for k, v in (adapters or {}).items()
        }
        with torch.device("meta"):
            model = cls(config, specs)
        return sum(p.numel() for p in model.parameters())


def count_parameters(config: NextDiTConfig, adapters: dict[str, Any] | None = None) -> int:
    """:meth:`LuminaModel.count_parameters` (the function form the package has always exported)."""
    return LuminaModel.count_parameters(config, adapters)


def preset_parameter_counts(adapters: dict[str, Any] | None = None) -> dict[str, int]:
    """Parameter count of every preset with the task ``adapters`` (None: the trunk alone); the released model's
    is ``{"image": lumina_modalities.image.RELEASED_IMAGE_ADAPTER}``."""
    return {name: count_parameters(NextDiTConfig.from_preset(name), adapters) for name in PRESETS}


def _init_module(module: nn.Module) -> None:
    """One module's share of :meth:`LuminaModel.initialize_weights` (applied to every submodule)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, TimestepEmbedder):
        for lin in (module.mlp[0], module.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
    elif isinstance(module, CaptionEmbedder):
        nn.init.zeros_(module.net[1].weight)
    elif isinstance(module, Attention) and module.has_context:
        nn.init.zeros_(module.gate)
    elif isinstance(module, TrunkBlock) and getattr(module, "adaLN_modulation", None) is not None:
        nn.init.zeros_(module.adaLN_modulation[1].weight)
    elif isinstance(module, FinalLayer):
        for lin in (module.adaLN_modulation[1], module.linear):
            nn.init.zeros_(lin.weight)
    elif isinstance(module, ModalityAdapter):
        nn.init.normal_(module.pad_token, std=0.02)
        if module.cond_embedder is not None:  # per-token conditioning starts switched off
            nn.init.zeros_(module.cond_embedder[2].weight)

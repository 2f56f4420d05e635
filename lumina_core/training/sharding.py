"""Fully sharded data parallel training (``train.strategy: fsdp``) with torch's FSDP2 (``fully_shard``).

Lightning's ``"fsdp"`` strategy wraps the model in the older ``FullyShardedDataParallel`` (flat parameters)
and refuses a CPU accelerator; we use Lightning's ``ModelParallelStrategy`` instead, which hands the module a
device mesh in ``configure_model``, where :func:`shard_run` applies ``fully_shard`` (FSDP2: every parameter
becomes a ``DTensor`` sharded on dim 0 across the data-parallel ranks, names unchanged). The same code runs on
GPUs (NCCL) and on the CPU (gloo), so the sharded path is tested on 2 CPU processes.

What is sharded, by module (the auto-wrap policy):

* every trunk block (``TrunkBlock``: ``NextDiTBlock``, ``UnifiedBlock``) is its own unit: its parameters are all-gathered just before the
  block runs and freed after it (again in the backward), so at any moment a rank holds one block unsharded
  plus its shards of everything else;
* the rest of the LuminaModel (embedders, adapters, heads) is one root unit;
* trainable conditioners (class tables) are units of their own (their gradients must be reduced too);
  frozen encoders (a text encoder) are replicated - each rank holds a full copy, nothing to reduce - or
  sharded with ``shard_frozen=True`` (saves their memory, costs an all-gather per encode).

Memory per rank for P trainable parameters on N ranks (fp32 master weights, AdamW): DDP holds
``4P + 4P + 8P = 16P`` bytes (weights, gradients, two moments) plus the EMA ``4P``; FSDP holds ``(16P + 4P) / N``
plus one block unsharded. Mixed precision (``train.precision: bf16-mixed``): parameters are all-gathered and
computed in bf16 (``MixedPrecisionPolicy(param_dtype=bf16)``), gradients reduced in fp32, the sharded master
weights and the optimiser stay fp32. Activation checkpointing per block: ``model.grad_checkpointing: true``
(the trunk recomputes each block in the backward; under FSDP the recompute all-gathers the block again).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def fsdp_strategy(devices: int, num_nodes: int) -> Any:
    """Lightning's ModelParallelStrategy as pure data-parallel sharding over ``devices * num_nodes`` ranks
    (no tensor parallelism); the module shards itself in ``configure_model`` (:func:`shard_run`)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy(
        data_parallel_size=int(devices) * int(num_nodes),
        tensor_parallel_size=1,
        save_distributed_checkpoint=False,
    )


def mixed_precision_policy(precision: str) -> Any:
    """FSDP2's policy for a Lightning precision name: bf16 / fp16 compute copies of the parameters with fp32
    gradient reduction for the ``*-mixed`` names (the sharded fp32 parameters are the master weights); no
    casting otherwise. Inputs are not cast: under ``*-mixed`` Lightning's autocast decides each op's dtype
    (RoPE stays fp32)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    low = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    if low is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32, cast_forward_inputs=False)


def has_parameters(module: nn.Module, trainable: bool | None = None) -> bool:
    return any(trainable is None or p.requires_grad == trainable for p in module.parameters())


def shard_run(
    model: nn.Module,
    conditioners: dict[str, nn.Module],
    mesh: Any,
    precision: str,
    shard_frozen: bool = False,
) -> list[str]:
    """Apply ``fully_shard`` to ``model`` (a LuminaModel: each trunk block, then the rest as the root) and to
    the conditioners (trainable ones always, frozen ones with ``shard_frozen``); returns the names of the
    sharded units, outermost last. Idempotent: a module already sharded is left alone."""
    from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

    from lumina_core.model.family import TrunkBlock

    mp = mixed_precision_policy(precision)
    units: list[str] = []

    def shard(name: str, module: nn.Module, methods: tuple[str, ...] = (), reshard: bool = True) -> None:
        if not isinstance(module, FSDPModule):
            fully_shard(module, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard)
            for method in methods:  # entry points other than forward gather the parameters too
                register_fsdp_forward_method(module, method)
        units.append(name)

    for name, sub in model.named_modules():
        if isinstance(sub, TrunkBlock):  # every family's block
            shard(f"model.{name}", sub)
    # the root (embedders, adapters, heads: small) stays gathered from forward to backward; ``encode`` is an
    # entry point of its own (objectives with a head call it) and is also called inside ``forward``
    shard("model", model, ("encode",), reshard=False)
    for name, enc in conditioners.items():
        if has_parameters(enc, trainable=True) or (shard_frozen and has_parameters(enc)):
            shard(f"conditioners.{name}", enc, ("encode",) if callable(getattr(enc, "encode", None)) else ())
    return units


def is_sharded(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensor(t: Tensor) -> Tensor:
    """The whole tensor of a sharded ``DTensor`` (an all-gather: every rank must call it), else ``t``."""
    return t.full_tensor() if is_sharded(t) else t


def gather_full(state: dict[str, Tensor], keep: bool) -> dict[str, Tensor]:
    """``state`` with every sharded tensor gathered whole, one tensor at a time onto the CPU (every rank must
    call it, in the same key order); ``keep`` False (ranks > 0) drops each gathered tensor at once and returns
    {} - so only the writing rank ever holds the full state."""
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        whole = full_tensor(v.detach())
        if keep:
            out[k] = whole.to("cpu")
    return out


def shard_like(full: Tensor, live: Tensor) -> Tensor:
    """``full`` (a whole tensor every rank holds) cut into this rank's shard exactly as the sharded ``live``
    parameter is (no communication), or ``full`` on ``live``'s device when ``live`` is not sharded."""
    from torch.distributed.tensor import distribute_tensor

    full = full.detach().to(live.device, live.dtype)
    if not is_sharded(live):
        return full
    return distribute_tensor(full, live.device_mesh, live.placements, src_data_rank=None)

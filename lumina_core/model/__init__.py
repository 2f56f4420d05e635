"""The Next-DiT trunk, N-D RoPE and the per-task adapters.

    from lumina_core.model import NextDiTConfig, PRESETS, LuminaModel, RopeScaling
    model = LuminaModel(NextDiTConfig.from_preset("tiny", context_dim=384), {"image": spec})
    v = model.velocity(batch, t, cond, task="image")

On the CPU the trunk's products run through its own kernels (:mod:`lumina_core.model.linear`): in fp32 by oneDNN
or BLAS, whichever was faster for the shape when first timed, in bf16 (autocast or bf16 weights) by oneDNN;
``set_linear_backend("torch")`` (``with linear_backend("torch"):`` for a block) or ``LUMINA_LINEAR_BACKEND=torch``
switches them to ``F.linear``, ``"onednn"`` or ``"blas"`` fixes the kernel.
"""

from lumina_core.model.adapter import FinalLayer, ModalityAdapter
from lumina_core.model.config import PRESETS, NextDiTConfig
from lumina_core.model.linear_routes import linear_backend, set_linear_backend
from lumina_core.model.lumina_model import LuminaModel, count_parameters, preset_parameter_counts
from lumina_core.model.nextdit import NextDiT
from lumina_core.model.rope import NDRope, RopeScaling
from lumina_core.model.unified import UnifiedNextDiT

__all__ = [
    "PRESETS",
    "FinalLayer",
    "LuminaModel",
    "ModalityAdapter",
    "NDRope",
    "NextDiT",
    "NextDiTConfig",
    "RopeScaling",
    "UnifiedNextDiT",
    "count_parameters",
    "linear_backend",
    "preset_parameter_counts",
    "set_linear_backend",
]

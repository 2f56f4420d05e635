"""Flow matching: the linear probability path, training time samplers and the ``flow_matching`` objective.

Importing this package registers ``flow_matching`` in ``OBJECTIVES`` and ``uniform``, ``logit_normal``,
``shifted`` in ``TIME_SAMPLERS``. Condition dropout for classifier-free guidance acts on raw conditions and
lives in :func:`lumina_core.conditioning.drop_conditions`.
"""

from lumina_core.flow.objective import FlowMatching, masked_mse
from lumina_core.flow.path import LinearPath, PathSample
from lumina_core.flow.time_samplers import (
    LogitNormalTimeSampler,
    ShiftedTimeSampler,
    TimeSampler,
    UniformTimeSampler,
    shift_time,
)

__all__ = [
    "FlowMatching",
    "LinearPath",
    "LogitNormalTimeSampler",
    "PathSample",
    "ShiftedTimeSampler",
    "TimeSampler",
    "UniformTimeSampler",
    "masked_mse",
    "shift_time",
]

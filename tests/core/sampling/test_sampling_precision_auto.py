"""sampling.precision: auto picks bf16 only where the device computes it natively."""

from __future__ import annotations

import pytest
import torch

from lumina_core.sampling.generate import PRECISIONS, model_precision, native_bf16


def test_auto_is_bf16_exactly_where_the_cpu_has_native_bf16():
    with model_precision("auto", "cpu"):
        dtype = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    assert dtype == (torch.bfloat16 if native_bf16("cpu") else torch.float32)
    with model_precision("fp32", "cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert "auto" in PRECISIONS
    with pytest.raises(ValueError, match="one of"):
        model_precision("half", "cpu")

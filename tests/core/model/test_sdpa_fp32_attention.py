"""fp32 attention inside a CPU bf16 region (lumina_core.model.sdpa): dtypes, values, gradients, the switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lumina_core.model.sdpa import attention_precision, get_attention_precision, sdpa, set_attention_precision


def _qkv(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 4, 24, 16, generator=g, dtype=dtype)
    k = torch.randn(2, 2, 24, 16, generator=g, dtype=dtype)
    v = torch.randn(2, 2, 24, 16, generator=g, dtype=dtype)
    mask = torch.ones(2, 1, 1, 24, dtype=torch.bool)
    mask[1, ..., 20:] = False  # padding in the second sample
    return q, k, v, mask


def test_fp32_rule_is_exact_fp32_inside_autocast():
    q, k, v, mask = _qkv()
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    with attention_precision("fp32"), torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
        auto = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert out.dtype == torch.bfloat16 and auto.dtype == torch.bfloat16  # the region's dtype either way
    # fp32 attention: only the final rounding to bf16 differs from the fp32 result
    assert torch.allclose(out.float(), ref.to(torch.bfloat16).float(), atol=0, rtol=0)
    # PyTorch's bf16 attention rounds its inputs and softmax too: measurably further from fp32
    assert (auto.float() - ref).abs().max() > (out.float() - ref).abs().max()


def test_auto_rule_is_pytorch_own_choice():
    q, k, v, mask = _qkv()
    with attention_precision("auto"), torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
        auto = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert torch.equal(out, auto)


def test_fp32_outside_autocast_is_untouched():
    q, k, v, mask = _qkv()
    assert torch.equal(sdpa(q, k, v, attn_mask=mask, enable_gqa=True),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True))


def test_bf16_inputs_without_autocast_come_back_bf16_and_closer():
    q, k, v, mask = _qkv(torch.bfloat16)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, enable_gqa=True)
    out = sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), ref.to(torch.bfloat16).float())


def test_gradients_flow_in_the_inputs_dtype():
    q, k, v, mask = _qkv()
    q, k, v = (t.to(torch.bfloat16).requires_grad_() for t in (q, k, v))
    with attention_precision("fp32"):
        sdpa(q, k, v, attn_mask=mask, enable_gqa=True).float().square().sum().backward()
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
    F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, enable_gqa=True).square().sum().backward()
    for low, high in ((q, qf), (k, kf), (v, vf)):
        assert low.grad.dtype == torch.bfloat16
        assert torch.allclose(low.grad.float(), high.grad, rtol=2e-2, atol=2e-2)
    assert torch.count_nonzero(k.grad[1, :, 20:]) == 0  # padded keys get no gradient


def test_bad_rule_is_refused_and_switch_restores():
    before = get_attention_precision()
    with pytest.raises(ValueError, match="one of"):
        set_attention_precision("bf16")
    with attention_precision("auto"):
        assert get_attention_precision() == "auto"
    assert get_attention_precision() == before

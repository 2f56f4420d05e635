"""Every linear layer of the model runs through its module: forward hooks and peft's LoRA take effect.

A forward hook that adds ``x D^T`` to a layer's output must give exactly the model whose layer weight is
``W + D``, with the gradients that model has; peft's LoRA on every layer must give the model whose weights are
``W + s B A``, and every LoRA parameter's gradient must be ``s G A^T`` / ``s B^T G`` with ``G`` that model's
weight gradient. Both in training (grad) and sampling (no-grad) mode, since the trunk's fast routes differ.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.model.linear import GatedLinear, Linear, RowBlockLinear, gated_hidden, is_bare
from lumina_core.plugin import AdapterSpec
from lumina_core.tokens import Condition, TokenBatch

SPEC = AdapterSpec(in_dim=8, out_dim=8, num_axes=2, axis_split=(1, 1), train_extent=(4, 4))


def tiny(separate_cross_query: bool = False) -> LuminaModel:
    torch.manual_seed(0)
    cfg = NextDiTConfig(
        dim=32, n_layers=2, n_heads=4, n_kv_heads=2, context_dim=12, separate_cross_query=separate_cross_query
    )
    model = LuminaModel(cfg, {"img": SPEC})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random values everywhere: the default init zeroes gates and output layers
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    hh, ww = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([hh, ww], -1).reshape(-1, 2)
    batch = TokenBatch.from_sequences(
        [torch.randn(12, 8, generator=g), torch.randn(6, 8, generator=g)], [pos, pos[:6]], [(3, 4), (2, 3)]
    )
    cond = Condition(torch.randn(2, 5, 12, generator=g), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool())
    return batch, torch.tensor([0.3, 0.8]), cond


def linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def run(model: nn.Module, grad: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    batch, t, cond = inputs()
    model.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(grad):
        out = model(batch, t, cond)
    grads = {}
    if grad:
        (out * torch.linspace(-1, 1, out.shape[-1])).square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads


def test_the_trunk_projections_are_modules():
    model = tiny(separate_cross_query=True)
    attn, ffn = model.trunk.layers[0].attention, model.trunk.layers[0].feed_forward
    assert isinstance(attn.wqkv, RowBlockLinear) and isinstance(attn.wkv_y, RowBlockLinear)
    assert all(isinstance(m, Linear) for m in (attn.wo, attn.wq_y, ffn.w13, ffn.w2))
    # 2 layers x (wqkv, wkv_y, wq_y, wo, w13, w2, adaLN) + time MLP (2) + caption + adapter (3)
    assert len(linear_names(model)) == 2 * 7 + 2 + 1 + 3


@pytest.mark.parametrize("grad", [True, False], ids=["train", "no-grad"])
@pytest.mark.parametrize("separate", [False, True], ids=["shared-q", "separate-q"])
def test_a_forward_hook_on_each_linear_fires_and_acts(grad, separate):
    """A hook adding ``x D^T`` to a layer's output is the model with that layer's weight ``W + D``."""
    model = tiny(separate)
    base, _ = run(model, grad)
    names = linear_names(model)
    for k, name in enumerate(names):
        hooked = copy.deepcopy(model)
        weight = hooked.get_submodule(name).weight
        delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(k)) * 0.2
        calls = []

        def add_delta(module, args, output, calls=calls, delta=delta):
            calls.append(1)
            return output + torch.nn.functional.linear(args[0], delta)

        hooked.get_submodule(name).register_forward_hook(add_delta)
        out, grads = run(hooked, grad)
        assert calls, f"the forward hook on {name} never fired"
        assert not torch.allclose(out, base, atol=1e-4), f"the hook on {name} did not change the output"

        shifted = copy.deepcopy(model)
        with torch.no_grad():
            shifted.get_submodule(name).weight.add_(delta)
        ref, ref_grads = run(shifted, grad)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
        assert set(grads) == set(ref_grads)
        for p in grads:
            torch.testing.assert_close(grads[p], ref_grads[p], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("grad", [True, False], ids=["train", "no-grad"])
def test_peft_lora_on_every_linear_acts_and_every_lora_parameter_learns(grad):
    peft = pytest.importorskip("peft")
    model = tiny(separate_cross_query=True)
    names = linear_names(model)
    rank, alpha = 4, 8
    lora = copy.deepcopy(model)
    peft.inject_adapter_in_model(peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=names), lora)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # peft starts B at zero (a no-op adapter); give every factor a value
        for n, p in lora.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    lora.eval()
    out, grads = run(lora, grad)

    merged = copy.deepcopy(model)
    s = alpha / rank
    factors = {}
    with torch.no_grad():
        for name in names:
            wrapped = lora.get_submodule(name)
            a, b = wrapped.lora_A["default"].weight, wrapped.lora_B["default"].weight
            factors[name] = (a.clone(), b.clone())
            merged.get_submodule(name).weight.add_(s * b @ a)
    ref, ref_grads = run(merged, grad)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    if not grad:
        return
    lora_params = [n for n in grads if "lora_" in n]
    assert len(lora_params) == 2 * len(names), "some LoRA parameters received no gradient"
    for name, (a, b) in factors.items():
        gw = ref_grads[name + ".weight"]
        ga, gb = grads[f"{name}.lora_A.default.weight"], grads[f"{name}.lora_B.default.weight"]
        assert ga.abs().max() > 0 and gb.abs().max() > 0, f"zero LoRA gradient on {name}"
        torch.testing.assert_close(gb, s * gw @ a.t(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ga, s * b.t() @ gw, atol=1e-5, rtol=1e-4)


def test_is_bare_sees_hooks_wrappers_and_replaced_forwards():
    layer = Linear(4, 3, bias=False)
    assert is_bare(layer, Linear) and not is_bare(layer, RowBlockLinear)
    handle = layer.register_forward_pre_hook(lambda m, a: None)
    assert not is_bare(layer, Linear)
    handle.remove()
    assert is_bare(layer, Linear)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None)
    try:
        assert not is_bare(layer, Linear)
    finally:
        handle.remove()
    layer.forward = lambda x: x
    assert not is_bare(layer, Linear)
    sub = type("Quantised", (Linear,), {})(4, 3)
    assert not is_bare(sub, Linear)


def test_a_wrapped_fused_projection_is_split_like_the_fast_route():
    torch.manual_seed(3)
    layer = RowBlockLinear(6, (4, 2, 2))
    x = torch.randn(2, 5, 6)
    fast = layer.blocks(x)
    layer.register_forward_hook(lambda m, a, o: o)  # a no-op hook: the module route
    slow = layer.blocks(x)
    assert [t.shape for t in fast] == [t.shape for t in slow] == [(2, 5, 4), (2, 5, 2), (2, 5, 2)]
    for f, s in zip(fast, slow, strict=True):
        torch.testing.assert_close(f, s)


@pytest.mark.parametrize("grad", [True, False], ids=["train", "no-grad"])
def test_the_swiglu_input_projection_gives_the_same_hidden_layer_by_either_route(grad):
    torch.manual_seed(4)
    layer = GatedLinear(6, 5)
    x = torch.randn(2, 7, 6, requires_grad=grad)

    def hidden():
        layer.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(grad):
            h = layer.gated(x)
        if not grad:
            return h, None, None
        gx = torch.autograd.grad(h.square().sum(), (x, layer.weight))
        return h.detach(), *gx

    fast = hidden()
    u, v = torch.nn.functional.linear(x.detach(), layer.weight.detach()).chunk(2, -1)
    torch.testing.assert_close(fast[0], torch.nn.functional.silu(u) * v, atol=1e-6, rtol=1e-5)
    hooked = layer.register_forward_hook(lambda m, a, o: o)  # a no-op hook: the module route
    assert not is_bare(layer, GatedLinear)
    slow = hidden()
    hooked.remove()
    for f, s in zip(fast, slow, strict=True):
        if f is not None:
            torch.testing.assert_close(f, s, atol=1e-6, rtol=1e-5)
    # a module that wraps the projection (as peft does) is called as a module and its output gated
    wrapper = nn.Sequential(layer)
    torch.testing.assert_close(gated_hidden(wrapper, x.detach()), fast[0], atol=1e-6, rtol=1e-5)

"""The linear path, time samplers and the masked flow-matching objective."""

from __future__ import annotations

import pytest
import torch

from lumina_core.flow import FlowMatching, LinearPath, masked_mse, shift_time
from lumina_core.registry import OBJECTIVES, TIME_SAMPLERS
from lumina_core.tokens import Condition, TokenBatch


def test_linear_path_end_points_and_velocity_is_time_derivative():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    for sigma_min in (0.0, 0.1):
        path = LinearPath(sigma_min)
        a = path.sample(x0, x1, torch.zeros(4))
        b = path.sample(x0, x1, torch.ones(4))
        torch.testing.assert_close(a.x_t, x0)
        torch.testing.assert_close(b.x_t, x1 + sigma_min * x0)
        t = torch.rand(4, generator=g)
        eps = 1e-3
        fd = (path.sample(x0, x1, t + eps).x_t - path.sample(x0, x1, t - eps).x_t) / (2 * eps)
        torch.testing.assert_close(path.sample(x0, x1, t).dx_t, fd, rtol=1e-3, atol=1e-3)
        # the data estimate from the true velocity recovers x1 (plus the sigma_min noise it keeps)
        ps = path.sample(x0, x1, t)
        torch.testing.assert_close(path.velocity_to_x1(ps.x_t, ps.dx_t, t), x1, rtol=1e-5, atol=1e-5)


def test_path_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        LinearPath().sample(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        LinearPath().sample(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="sigma_min"):
        LinearPath(1.0)


def test_time_samplers_distributions():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    u = TIME_SAMPLERS.build("uniform")(n, generator=g)
    assert u.shape == (n,) and 0 <= u.min() and u.max() <= 1 and abs(u.mean().item() - 0.5) < 0.01
    ln = TIME_SAMPLERS.build({"name": "logit_normal", "params": {"m": 0.5, "s": 1.0}})(n, generator=g)
    assert abs(ln.median().item() - torch.sigmoid(torch.tensor(0.5)).item()) < 0.01
    assert abs(torch.logit(ln).std().item() - 1.0) < 0.01
    sh = TIME_SAMPLERS.build({"name": "shifted", "params": {"s": 3.0}})(n, generator=g)
    assert abs(sh.median().item() - 0.25) < 0.01  # shift(1/2) = 1 / (1 + s)
    assert shift_time(torch.tensor(0.5), 1.0).item() == 0.5


def test_time_samplers_are_repeatable_with_a_generator():
    for name in ("uniform", "logit_normal", "shifted"):
        s = TIME_SAMPLERS.build(name)
        a = s(8, generator=torch.Generator().manual_seed(3))
        b = s(8, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_masked_mse_ignores_padding_and_weighs_samples_equally():
    pred = torch.zeros(2, 4, 3)
    target = torch.ones(2, 4, 3)
    target[1, :2] = 3.0  # sample 1's real tokens: error 9
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    target[1, 2:] = 1e6  # garbage on padding
    torch.testing.assert_close(masked_mse(pred, target, mask), torch.tensor([1.0, 9.0]))
    with pytest.raises(ValueError, match="no real tokens"):
        masked_mse(pred, target, torch.zeros(2, 4, dtype=torch.bool))


class ZeroModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def velocity(self, batch, t, cond, task=None):
        self.seen.append((batch, t, task))
        return torch.zeros_like(batch.tokens)


def _batch(tokens, mask):
    b, n, _ = tokens.shape
    return TokenBatch(tokens, torch.zeros(b, n, 1), mask, [(n,)] * b)


def test_objective_known_answer_and_padding_invariance():
    obj = OBJECTIVES.build(
        {"name": "flow_matching", "params": {"time_sampler": {"name": "logit_normal", "params": {}}}}
    )
    assert isinstance(obj, FlowMatching)
    x1 = torch.randn(3, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    model = ZeroModel()
    loss, stats = obj.loss(
        model, "seq", _batch(x1, mask), Condition(), generator=torch.Generator().manual_seed(7)
    )
    # the same draws by hand: noise first, then times
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(x1.shape, generator=g)
    t = torch.sigmoid(torch.randn(3, generator=g))
    u = (x1 - x0).pow(2).mean(-1)
    expected = torch.stack([u[0].mean(), u[1, :3].mean(), u[2].mean()]).mean()
    torch.testing.assert_close(loss, expected)
    batch, t_seen, task = model.seen[0]
    torch.testing.assert_close(t_seen, t)
    assert task == "seq"
    torch.testing.assert_close(batch.tokens, t[:, None, None] * x1 + (1 - t[:, None, None]) * x0)
    assert stats["loss"].item() == loss.item()
    # whatever sits in the padding does not change the loss
    x1_garbage = x1.clone()
    x1_garbage[1, 3:] = 123.0
    loss2, _ = obj.loss(
        ZeroModel(), "seq", _batch(x1_garbage, mask), Condition(), torch.Generator().manual_seed(7)
    )
    assert loss2.item() == loss.item()


def test_objective_trains_a_parameter_towards_the_mean_velocity():
    # for x1 = c constant and a model predicting a learned constant b, the optimum is b = E[x1 - x0] = c
    class ConstModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(2))

        def velocity(self, batch, t, cond, task=None):
            return self.b.expand_as(batch.tokens)

    model, obj = ConstModel(), FlowMatching()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    g = torch.Generator().manual_seed(0)
    c = torch.tensor([1.5, -0.5])
    for _ in range(300):
        loss, _ = obj.loss(
            model,
            "x",
            _batch(c.expand(16, 4, 2).clone(), torch.ones(16, 4, dtype=torch.bool)),
            Condition(),
            g,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(model.b.detach(), c, atol=0.1, rtol=0)

"""Lumina-Image 2.0's sampling extras, by their maths on known answers: the token-count time shift, CFG
truncation (guidance only while t < cfg_trunc) and CFG renormalisation (the guided velocity's norm clipped to
r times the conditional one's); and `config validate` refusing settings outside their range."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.sampling import time_grid
from lumina_core.sampling.generate import guided_velocity
from lumina_core.sampling.guidance import cfg_renormalize
from lumina_core.sampling.settings import SamplingSettings
from lumina_core.tokens import Condition, TokenBatch

TOKEN_SHIFT = {"name": "token_shift", "params": {}}


@pytest.mark.parametrize(("tokens", "mu"), [(256, 0.5), (4096, 1.15), (2176, 0.825), (16, 0.459375)])
def test_token_shift_grid_is_the_shift_grid_at_exp_mu_of_the_token_count(tokens, mu):
    # mu = 0.5 + 0.65 (n - 256) / 3840: 256 -> 0.5, 4096 -> 1.15, 2176 (half way) -> 0.825, 16 -> 0.459375
    got = time_grid(TOKEN_SHIFT, 4, tokens=tokens)
    s = math.exp(mu)
    u = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    torch.testing.assert_close(got, u / (u + s - s * u), rtol=0, atol=1e-12)
    # in sigma = 1 - t: sigma' = e^mu sigma / (1 + (e^mu - 1) sigma); at sigma = 1/2, sigma' = e^mu / (1 + e^mu)
    assert float(1 - got[2]) == pytest.approx(s / (1 + s), abs=1e-12)


def test_token_shift_grid_matches_diffusers_flow_match_scheduler_with_mu_from_tokens():
    diffusers = pytest.importorskip("diffusers")
    import numpy as np

    for tokens, steps in ((4096, 30), (1024, 7)):
        mu = 0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256)
        sched = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
        sched.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        ours = time_grid(TOKEN_SHIFT, steps, tokens=tokens)
        torch.testing.assert_close(ours.float(), 1 - sched.sigmas.float(), rtol=0, atol=1e-6)


def test_token_shift_grid_needs_the_token_count():
    with pytest.raises(ValueError, match="number of tokens"):
        time_grid(TOKEN_SHIFT, 4)


def test_renormalisation_clips_the_norm_to_r_times_the_conditional_one():
    cond = torch.tensor([[[3.0, 4.0]], [[0.0, 1.0]]])  # norms 5 and 1
    guided = torch.tensor([[[6.0, 8.0]], [[0.0, 0.5]]])  # norms 10 and 0.5
    out = cfg_renormalize(guided, cond, 1.0)
    torch.testing.assert_close(
        out, torch.tensor([[[3.0, 4.0]], [[0.0, 0.5]]])
    )  # clipped to 5; kept (0.5 < 1)
    out = cfg_renormalize(guided, cond, 1.5)
    torch.testing.assert_close(out, torch.tensor([[[4.5, 6.0]], [[0.0, 0.5]]]))  # clipped to 7.5
    # the norm is over the whole sample (every token and channel), padded tokens left out
    cond = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # valid norm sqrt 2
    guided = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])  # valid norm 2 sqrt 2
    out = cfg_renormalize(guided, cond, 1.0, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(out[0, :2], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="factor > 0"):
        cfg_renormalize(guided, cond, 0.0)


class _Recorder:
    """A model whose velocity is 1 for the conditional caption and 0 for the empty one; records call sizes."""

    def __init__(self):
        self.batch_sizes = []

    def velocity(self, batch, t, cond, task, **kw):
        self.batch_sizes.append(batch.tokens.shape[0])
        return cond.context[:, :1, :1].expand_as(batch.tokens).clone()


def _layout():
    return TokenBatch(
        torch.zeros(1, 3, 2),
        torch.zeros(1, 3, 2, dtype=torch.long),
        torch.ones(1, 3, dtype=torch.bool),
        [(3,)],
    )


def test_truncation_guides_before_cfg_trunc_and_uses_the_conditional_velocity_after():
    model = _Recorder()
    cond, uncond = Condition(torch.ones(1, 1, 1)), Condition(torch.zeros(1, 1, 1))
    v = guided_velocity(
        model, "t", _layout(), cond, uncond, SamplingSettings.build(cfg_scale=4.0, cfg_trunc=0.5)
    )
    x = torch.zeros(1, 3, 2)
    assert torch.equal(v(x, torch.tensor([0.2])), torch.full((1, 3, 2), 4.0))  # 0 + 4 (1 - 0)
    assert torch.equal(v(x, torch.tensor([0.5])), torch.ones(1, 3, 2))  # t >= 0.5: conditional alone
    assert model.batch_sizes == [2, 1]  # one call on [cond, uncond], then the conditional half only
    clip = SamplingSettings.build(cfg_scale=4.0, cfg_renorm=1.0)
    v = guided_velocity(model, "t", _layout(), cond, uncond, clip)  # clipped to |v_c|
    assert torch.equal(v(x, torch.tensor([0.2])), torch.ones(1, 3, 2))


@pytest.mark.parametrize(
    ("override", "message"),
    [("tasks.0.sampling.cfg_trunc=1.5", "cfg_trunc: must be in [0, 1]"),
     ("tasks.0.sampling.cfg_renorm=0", "cfg_renorm: must be greater than 0")],
)  # fmt: skip
def test_config_validate_refuses_guidance_settings_out_of_range(override, message, capsys):
    from lumina_core.cli.main import main

    assert main(["config", "validate", "recipes/image/shapes_tiny.yaml", override]) == 2
    assert message in capsys.readouterr().err

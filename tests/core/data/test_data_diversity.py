"""Within-condition spread: known answers, collapse, and the real items' own spread."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.data.diversity import condition_key, within_condition_spread


def test_known_distances_and_groups_of_one_are_left_out():
    # group "a": points 0, 3, 4 on a line -> distances 3, 4, 1 -> mean 8/3; group "b": 0 and 2 -> 2; "c" alone
    gen = torch.tensor([[0.0], [3.0], [4.0], [0.0], [2.0], [9.0]])
    real = torch.tensor([[0.0], [1.0], [2.0], [0.0], [1.0], [5.0]])
    scores = within_condition_spread(gen, real, ["a", "a", "a", "b", "b", "c"])
    assert scores["spread"] == pytest.approx((8 / 3 + 2) / 2)
    assert scores["spread_real"] == pytest.approx((4 / 3 + 1) / 2)
    assert scores["spread_ratio"] == pytest.approx(scores["spread"] / scores["spread_real"])


def test_a_collapsed_model_scores_zero_and_real_data_one():
    torch.manual_seed(0)
    conditions = [i % 4 for i in range(32)]
    real = torch.randn(32, 8)
    collapsed = torch.stack([real[c] for c in conditions])  # every sample of a condition the same
    assert within_condition_spread(collapsed, real, conditions)["spread_ratio"] == 0.0
    assert within_condition_spread(real, real, conditions)["spread_ratio"] == pytest.approx(1.0)
    assert within_condition_spread(10 * torch.randn(32, 8), real, conditions)["spread_ratio"] > 3


def test_nothing_to_compare_and_bad_shapes():
    scores = within_condition_spread(torch.zeros(3, 2), torch.zeros(3, 2), ["a", "b", "c"])
    assert all(math.isnan(v) for v in scores.values())
    with pytest.raises(ValueError, match="one D"):
        within_condition_spread(torch.zeros(2, 3), torch.zeros(2, 4), ["a", "a"])
    with pytest.raises(ValueError, match="one condition per sample"):
        within_condition_spread(torch.zeros(2, 3), torch.zeros(2, 3), ["a"])
    assert condition_key([1, 2]) == "[1, 2]" and condition_key("x") == "x" and condition_key(3) == 3

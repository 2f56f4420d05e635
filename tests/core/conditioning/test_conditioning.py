"""Conditioner contract, CFG dropout, the `none` and `class` conditioners, padding helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lumina_core.conditioning import (
    ClassConditioner,
    Conditioner,
    NoneConditioner,
    drop_conditions,
    pad_features,
    unpad_features,
)
from lumina_core.registry import CONDITIONERS


# -- drop_conditions ------------------------------------------------------------------------------------
def test_drop_conditions_is_deterministic_per_generator():
    values = [f"caption {i}" for i in range(200)]
    a = drop_conditions(values, 0.3, "", torch.Generator().manual_seed(7))
    b = drop_conditions(values, 0.3, "", torch.Generator().manual_seed(7))
    c = drop_conditions(values, 0.3, "", torch.Generator().manual_seed(8))
    assert a == b
    assert a != c


def test_drop_conditions_rate_and_kept_values():
    values = list(range(20000))
    out = drop_conditions(values, 0.1, -1, torch.Generator().manual_seed(0))
    dropped = sum(v == -1 for v in out)
    # Binomial(20000, 0.1): sd = 42; 5 sd either side
    assert abs(dropped - 2000) < 215
    assert all(o == v for o, v in zip(out, values, strict=True) if o != -1)


def test_drop_conditions_matches_bernoulli_draws():
    g = torch.Generator().manual_seed(3)
    expected = (torch.rand(50, generator=torch.Generator().manual_seed(3)) < 0.5).tolist()
    out = drop_conditions(list(range(50)), 0.5, None, g)
    assert [o is None for o in out] == expected


def test_drop_conditions_edges_and_errors():
    vals = ["a", "b", "c"]
    assert drop_conditions(vals, 0.0, "", torch.Generator().manual_seed(0)) == vals
    assert drop_conditions(vals, 1.0, "", torch.Generator().manual_seed(0)) == ["", "", ""]
    assert drop_conditions([], 0.5, "", None) == []
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        drop_conditions(vals, 1.5, "", None)
    with pytest.raises(ValueError):
        drop_conditions(vals, -0.1, "", None)


# -- none -----------------------------------------------------------------------------------------------
def test_none_conditioner():
    cond = CONDITIONERS.build({"name": "none", "params": {}})
    assert isinstance(cond, NoneConditioner) and isinstance(cond, Conditioner)
    assert cond.dim is None and cond.kind == "none" and cond.null_value is None and not cond.trainable
    out = cond.encode([None, None, "ignored"])
    assert out.context is None and out.mask is None
    with pytest.raises(ValueError, match="list"):
        cond.encode("not a list")


# -- class ----------------------------------------------------------------------------------------------
def test_class_conditioner_shapes_and_null_row():
    torch.manual_seed(0)
    cond = CONDITIONERS.build({"name": "class", "params": {"num_classes": 10, "dim": 16}})
    assert isinstance(cond, ClassConditioner)
    assert cond.dim == 16 and cond.kind == "class" and cond.null_value == 10 and cond.trainable
    assert cond.table.weight.shape == (11, 16)
    out = cond.encode([3, 10, None, torch.tensor(3)])
    assert out.context.shape == (4, 1, 16) and out.mask.all()
    assert torch.equal(out.context[0], cond.table.weight[3:4])
    assert torch.equal(out.context[1], cond.table.weight[10:11])  # the null row
    assert torch.equal(out.context[2], out.context[1])  # None reads as the null class
    assert torch.equal(out.context[3], out.context[0])


def test_class_conditioner_trains():
    cond = ClassConditioner(num_classes=3, dim=4)
    out = cond.encode([0, 2])
    out.context.sum().backward()
    grad = cond.table.weight.grad
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert grad[1].abs().sum() == 0 and grad[3].abs().sum() == 0
    assert "table.weight" in cond.state_dict()


@pytest.mark.parametrize("bad", [-1, 11, 2.0, "3", True, torch.tensor([1, 2]), torch.tensor(1.0)])
def test_class_conditioner_rejects_bad_labels(bad):
    cond = ClassConditioner(num_classes=10, dim=4)
    with pytest.raises(ValueError, match="class label 1"):
        cond.encode([0, bad])


@pytest.mark.parametrize("kwargs", [{"num_classes": 0, "dim": 4}, {"num_classes": 3, "dim": 0}])
def test_class_conditioner_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        ClassConditioner(**kwargs)


def test_conditioner_drop_uses_null_value():
    cond = ClassConditioner(num_classes=5, dim=4)
    out = cond.drop([0, 1, 2, 3], 1.0, torch.Generator().manual_seed(0))
    assert out == [5, 5, 5, 5]
    assert cond.encode(out).context.shape == (4, 1, 4)


# -- padding helpers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_unpad_round_trip(side):
    feats = [torch.randn(3, 5), torch.randn(1, 5), torch.randn(4, 5)]
    cond = pad_features(feats, side, pad_to_multiple_of=8)
    assert cond.context.shape == (3, 8, 5)
    assert cond.mask.sum(1).tolist() == [3, 1, 4]
    assert (cond.context[~cond.mask] == 0).all()
    if side == "left":
        assert cond.mask[:, -1].all()
    else:
        assert cond.mask[:, 0].all()
    for a, b in zip(unpad_features(cond), feats, strict=True):
        assert torch.equal(a, b)


def test_pad_features_rejects_bad_input():
    with pytest.raises(ValueError, match="padding_side"):
        pad_features([torch.zeros(1, 2)], "middle")
    with pytest.raises(ValueError, match="one D"):
        pad_features([torch.zeros(1, 2), torch.zeros(1, 3)])


def test_import_is_light():
    code = (
        "import sys, lumina_core.conditioning, lumina_core.data;"
        "bad = [m for m in ('transformers', 'webdataset', 'sentence_transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr

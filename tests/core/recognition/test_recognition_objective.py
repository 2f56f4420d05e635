"""The ``classification`` objective on a tiny trunk, with tokens of no particular modality (1-D sequences):
labels, label smoothing, padding invariance of both heads, learning a separable task, heads on the model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.plugin import AdapterSpec
from lumina_core.recognition import Classification, ClassifierHead
from lumina_core.registry import OBJECTIVES
from lumina_core.tokens import Condition, TokenBatch
from lumina_core.training.build import add_objective_heads

SPEC = AdapterSpec(
    in_dim=3, out_dim=3, num_axes=1, axis_split=(1,), rope_layout="blocked", train_extent=(12,)
)


def tiny_classifier(pool: str = "mean", classes=3, seed: int = 0) -> tuple[LuminaModel, Classification]:
    torch.manual_seed(seed)
    model = LuminaModel(NextDiTConfig.from_dict({"dim": 32, "n_layers": 2, "n_heads": 2, "multiple_of": 16}))
    model.add_task("seq", SPEC)
    objective = Classification(classes, pool=pool, label_smoothing=0.1)
    add_objective_heads(model, {"seq": objective})
    return model, objective


def sequences(labels: list[int], lengths: list[int], seed: int = 0) -> TokenBatch:
    """Class k: a ramp of slope (k - 1) on channel 0 plus noise; 1-D positions 0..L-1."""
    g = torch.Generator().manual_seed(seed)
    toks, pos = [], []
    for k, n in zip(labels, lengths, strict=True):
        ramp = torch.linspace(-1, 1, n) * (k - 1)
        x = 0.3 * torch.randn(n, 3, generator=g)
        x[:, 0] += ramp
        toks.append(x)
        pos.append(torch.arange(n, dtype=torch.float32)[:, None])
    return TokenBatch.from_sequences(toks, pos, [(n,) for n in lengths])


def test_registered_and_parameters_checked():
    obj = OBJECTIVES.build({"name": "classification", "params": {"classes": ["cat", "dog"]}})
    assert isinstance(obj, Classification) and obj.class_names == ["cat", "dog"]
    with pytest.raises(ValueError) as err:
        Classification(1, label="shape", pool="max", label_smoothing=1.5)
    msg = str(err.value)
    for part in (
        "at least 2 classes",
        "'condition' or 'meta.<key>'",
        "pool must be one of",
        "label_smoothing",
    ):
        assert part in msg  # every problem at once


def test_labels_from_condition_names_and_meta():
    obj = Classification(["circle", "square", "triangle"], label="meta.shape")
    batch = {"conditions": [None, None], "meta": [{"shape": "square"}, {"shape": "circle"}]}
    assert obj.targets(batch).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"label 'hexagon' is outside the declared classes.*'circle'"):
        obj.targets({"conditions": [None], "meta": [{"shape": "hexagon"}]})
    with pytest.raises(ValueError, match=r"no meta\['shape'\]"):
        obj.targets({"conditions": [None], "meta": [{"colour": "red"}]})
    by_id = Classification(10)
    assert by_id.targets({"conditions": [7, "3"], "meta": [{}, {}]}).tolist() == [7, 3]
    for bad in (10, -1, True, None):
        with pytest.raises(ValueError, match="outside the declared classes: expected a class id 0..9"):
            by_id.class_index(bad)


def test_loss_is_label_smoothed_cross_entropy():
    model, obj = tiny_classifier()
    with torch.no_grad():  # a non-trivial head so that the logits differ between classes
        model.heads["seq"].fc.weight.normal_()
    batch = sequences([0, 1, 2, 1], [12, 12, 8, 10])
    y = torch.tensor([0, 1, 2, 1])
    loss, stats = obj.loss(model, "seq", batch, Condition(), targets=y)
    logp = F.log_softmax(obj.logits(model, "seq", batch), dim=-1)
    eps, k = 0.1, 3
    manual = (-(1 - eps) * logp.gather(1, y[:, None])[:, 0] - eps / k * logp.sum(-1)).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert 0.0 <= float(stats["accuracy"]) <= 1.0


def test_the_objectives_rope_scaling_runs_in_training_and_inference():
    """``rope_scaling: {name: pi, params: {shrink: true}}``: a 6-token sequence of a trunk trained on 12
    positions is read at positions 0, 2, .., 10, in the loss and in the logits; a caller's scaling replaces it."""
    model, plain = tiny_classifier()
    with torch.no_grad():  # off the zero-initialised modulation, so that attention (and RoPE) matter
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    shrunk = Classification(3, label_smoothing=0.1, rope_scaling={"name": "pi", "params": {"shrink": True}})
    short = sequences([0, 1], [6, 6])
    spread = TokenBatch.from_sequences(
        [short.tokens[i] for i in range(2)], [short.positions[i] * 2 for i in range(2)], [(6,), (6,)]
    )
    expected = plain.logits(model, "seq", spread)
    torch.testing.assert_close(shrunk.logits(model, "seq", short), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain.logits(model, "seq", short), expected, atol=1e-3)
    y = torch.tensor([0, 1])
    loss, _ = shrunk.loss(model, "seq", short, Condition(), targets=y)
    assert loss.item() == pytest.approx(F.cross_entropy(expected, y, label_smoothing=0.1).item(), rel=1e-5)
    caller = shrunk.logits(model, "seq", short, rope_scaling={"name": "none"})
    torch.testing.assert_close(caller, plain.logits(model, "seq", short))
    with pytest.raises(ValueError, match="rope_scaling: .*kind must be one of"):
        Classification(3, rope_scaling={"name": "stretchy"})


def test_zero_initialised_head_starts_at_the_uniform_prediction():
    model, obj = tiny_classifier()
    batch = sequences([0, 1, 2], [12, 12, 12])
    loss, _ = obj.loss(model, "seq", batch, Condition(), targets=torch.tensor([0, 1, 2]))
    assert loss.item() == pytest.approx(math.log(3), rel=1e-5)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_logits_do_not_depend_on_padding(pool):
    model, obj = tiny_classifier(pool)
    with torch.no_grad():
        model.heads["seq"].fc.weight.normal_()
    model.eval()
    short = sequences([2], [6], seed=3)
    both = TokenBatch.from_sequences(
        [short.tokens[0], sequences([0], [12], seed=4).tokens[0]],
        [short.positions[0], torch.arange(12, dtype=torch.float32)[:, None]],
        [(6,), (12,)],
    )
    alone = obj.logits(model, "seq", short)
    padded = obj.logits(model, "seq", both)[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_training_separates_the_classes(pool):
    model, obj = tiny_classifier(pool, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    labels = [i % 3 for i in range(24)]
    for step in range(60):
        batch = sequences(labels, [12 if i % 2 else 9 for i in range(24)], seed=step)
        loss, _ = obj.loss(model, "seq", batch, Condition(), targets=torch.tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        held = sequences(labels, [10] * 24, seed=999)
        acc = (obj.logits(model, "seq", held).argmax(-1) == torch.tensor(labels)).float().mean()
    assert float(acc) >= 0.9


def test_conditioning_the_trunk_on_the_label_is_refused():
    model, obj = tiny_classifier()
    batch = sequences([0, 1], [12, 12])
    leak = Condition(context=torch.zeros(2, 1, 8), mask=torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="gives the answer away"):
        obj.loss(model, "seq", batch, leak, targets=torch.tensor([0, 1]))


def test_heads_live_on_the_model_and_flow_matching_adds_none():
    model, _ = tiny_classifier("cls")
    keys = list(model.state_dict())
    assert any(k.startswith("heads.seq.") for k in keys)
    assert isinstance(model.heads["seq"], ClassifierHead)
    import lumina_core.flow  # noqa: F401

    flow = LuminaModel(NextDiTConfig.from_dict({"dim": 32, "n_layers": 1, "n_heads": 2, "multiple_of": 16}))
    flow.add_task("seq", SPEC)
    before = list(flow.state_dict())
    add_objective_heads(flow, {"seq": OBJECTIVES.build({"name": "flow_matching"})})
    assert list(flow.state_dict()) == before  # a flow-matching checkpoint holds exactly the same keys
    with pytest.raises(ValueError, match="unknown task"):
        model.add_head("nope", torch.nn.Linear(2, 2))


def test_tokens_without_positions_classify_permutation_invariantly():
    """Point-cloud-like tokens (no RoPE axes): a mean-pooled classifier's logits ignore the token order."""
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig.from_dict({"dim": 32, "n_layers": 2, "n_heads": 2, "multiple_of": 16}))
    model.add_task("points", AdapterSpec(in_dim=3, out_dim=3, num_axes=0, axis_split=()))
    obj = Classification(4)
    add_objective_heads(model, {"points": obj})
    with torch.no_grad():
        model.heads["points"].fc.weight.normal_()
    model.eval()
    pts = torch.randn(20, 3)
    perm = torch.randperm(20)
    batch = TokenBatch.from_sequences([pts, pts[perm]], [torch.zeros(20, 0)] * 2, [(20,), (20,)])
    with torch.no_grad():
        logits = obj.logits(model, "points", batch)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)
    assert logits[0].std().item() > 0  # a real, non-constant prediction

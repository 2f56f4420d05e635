"""Composition methods (train.composition) and the per-task diagnostics (train.diagnostics_every): the maths of
each method, that the recipe selects them, that validation names a method the recipe cannot use, that their
state resumes bit for bit, and that diagnostics measure without changing the run."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from fixtures.state_compare import same_state
from fixtures.toy_plugin import seq_task, tiny_recipe

from lumina_core.training import checkpoint as ckpt_io
from lumina_core.training.api import train
from lumina_core.training.build import build_run
from lumina_core.training.composition import build_composition
from lumina_core.training.composition.loss_norm import LossNormalisation
from lumina_core.training.composition.pcgrad import PCGrad, project_conflicting
from lumina_core.training.composition.temperature import TemperatureDraws
from lumina_core.training.diagnostics import read_diagnostics


def two_tasks(w: tuple[float, float] = (0.6, 0.4)) -> list[dict]:
    a, b = seq_task("a"), seq_task("b")
    a["draw_weight"], b["draw_weight"] = w
    return [a, b]


def methods(*specs) -> list[dict]:
    """``train.composition`` entries as components (bare names are for recipe files and overrides)."""
    return [{"name": s} if isinstance(s, str) else s for s in specs]


def family_recipe(out, family: str, **train):
    """The two-task toy recipe on trunk family ``family``."""
    cfg = tiny_recipe(out, two_tasks(), **train)
    cfg.model.family = family
    return cfg


def weights_of(run, step: int) -> dict[str, torch.Tensor]:
    return ckpt_io.load_weights(run / "checkpoints" / f"step_{step:07d}", "model")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- the methods' maths -----------------------------------------------------------------------------------------
def test_loss_norm_divides_each_task_by_the_bias_corrected_running_mean_of_its_own_loss():
    method = LossNormalisation(beta=0.5)
    first = method.scale_losses({"a": torch.tensor(4.0), "b": torch.tensor(0.1)}, {"a": 4.0, "b": 0.1})
    assert first["a"].item() == pytest.approx(1.0) and first["b"].item() == pytest.approx(1.0)
    second = method.scale_losses({"a": torch.tensor(2.0)}, {"a": 2.0})  # only a ran: b's mean stays
    mean_a = (0.5 * 0.5 * 4.0 + 0.5 * 2.0) / (1 - 0.5**2)  # EMA of 4, 2 with bias correction = 2.667
    assert second["a"].item() == pytest.approx(2.0 / mean_a)
    assert method.count == {"a": 2, "b": 1} and method.running_mean("b") == pytest.approx(0.1)
    restored = LossNormalisation(beta=0.5)
    restored.load_state_dict(method.state_dict())
    assert restored.running_mean("a") == method.running_mean("a")


def test_pcgrad_removes_only_the_conflicting_component_against_the_original_gradients():
    g1, g2, g3 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([0.0, 2.0])
    p1, p2 = project_conflicting([g1, g2], torch.Generator().manual_seed(0))
    assert torch.allclose(p1, torch.tensor([0.5, 0.5])) and torch.allclose(p2, torch.tensor([0.0, 1.0]))
    assert p1.dot(g2) == pytest.approx(0.0, abs=1e-7) and p2.dot(g1) == pytest.approx(0.0, abs=1e-7)
    q1, q3 = project_conflicting([g1, g3], torch.Generator().manual_seed(0))  # orthogonal: no conflict
    assert torch.equal(q1, g1) and torch.equal(q3, g3)
    assert torch.equal(g1, torch.tensor([1.0, 0.0]))  # inputs untouched


def test_pcgrad_backward_projects_the_shared_gradient_and_leaves_task_parameters_alone():
    torch.manual_seed(0)
    shared, head_a, head_b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    with torch.no_grad():  # b's head mostly opposes a's: the two trunk gradients conflict
        head_b.weight.copy_(-head_a.weight + 0.3 * torch.randn_like(head_a.weight))
    x = torch.randn(5, 3)
    losses = {"a": head_a(shared(x)).sum(), "b": 3.0 * head_b(shared(x)).sum()}
    trunk = list(shared.parameters())
    params = trunk + list(head_a.parameters()) + list(head_b.parameters())
    per = {k: torch.autograd.grad(v, params, retain_graph=True, allow_unused=True) for k, v in losses.items()}
    PCGrad().backward(losses, trunk, params)
    flat = [torch.cat([g.reshape(-1) for g in per[k][:2]]) for k in ("a", "b")]
    assert flat[0].dot(flat[1]) < 0
    want = sum(project_conflicting(flat, torch.Generator().manual_seed(0)))
    got = torch.cat([p.grad.reshape(-1) for p in trunk])
    assert torch.allclose(got, want, atol=1e-6) and not torch.allclose(got, flat[0] + flat[1], atol=1e-4)
    for i, p in enumerate(params[2:4]):  # head a: its own gradient, as plain backward gives it
        assert torch.allclose(p.grad, per["a"][2 + i])


def test_grad_norm_brings_each_task_gradient_on_the_trunk_to_its_running_norm():
    from lumina_core.training.composition.grad_norm import GradientNormalisation

    torch.manual_seed(0)
    shared, head_a, head_b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    x = torch.randn(5, 3)
    trunk = list(shared.parameters())
    params = trunk + list(head_a.parameters()) + list(head_b.parameters())
    method = GradientNormalisation(beta=0.5)
    for scale in (1.0, 10.0):  # task b's loss (and gradient) ten times bigger the second time
        losses = {"a": head_a(shared(x)).sum(), "b": 100.0 * scale * head_b(shared(x)).sum()}
        per = {
            k: torch.autograd.grad(v, params, retain_graph=True, allow_unused=True) for k, v in losses.items()
        }
        method.backward(losses, trunk, params)
        norms = {k: torch.cat([g.reshape(-1) for g in per[k][:2]]).norm().item() for k in per}
        divisor = {k: method.running_norm(k) for k in per}
        want = sum(torch.cat([g.reshape(-1) for g in per[k][:2]]) / divisor[k] for k in per)
        assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in trunk]), want, rtol=1e-5)
        assert torch.allclose(params[2].grad, per["a"][2] / divisor["a"], rtol=1e-5)
    assert method.count == {"a": 2, "b": 2}
    assert divisor["b"] == pytest.approx(
        (0.25 * norms["b"] / 10 + 0.5 * norms["b"]) / 0.75
    )  # bias-corrected mean
    assert norms["b"] / divisor["b"] < 2.0  # a task ten times louder is not ten times stronger


def test_task_moments_give_each_task_the_adamw_moments_and_steps_it_would_have_alone():
    """Two tasks in an irregular order on one shared layer, under one real AdamW: with task_moments each task's
    moments (exp_avg, exp_avg_sq, step) are exactly those of an AdamW that saw only that task's gradients, and
    every update is that AdamW's update; the task's own head keeps its one set. Without the method the moments
    mix the tasks."""
    from lumina_core.training.composition.task_moments import TaskMoments

    torch.manual_seed(0)
    shared, heads = torch.nn.Linear(3, 3), {"a": torch.nn.Linear(3, 1), "b": torch.nn.Linear(3, 1)}
    trunk = list(shared.parameters())
    order = ["a", "a", "b", "a", "b", "b", "b", "a"]
    scale = {"a": 0.1, "b": 3.0}  # b's trunk gradients 30x a's, as the image task's are smaller on the recipe
    grads = [[scale[t] * torch.randn_like(p) for p in trunk] for t in order]

    def composed(method):
        layer, opt_heads = torch.nn.Linear(3, 3), {k: torch.nn.Linear(3, 1) for k in heads}
        layer.load_state_dict(shared.state_dict())
        params = list(layer.parameters())
        opt = torch.optim.AdamW(
            params + [p for h in opt_heads.values() for p in h.parameters()], lr=0.01, weight_decay=0.0
        )
        deltas = []
        for task, g in zip(order, grads, strict=True):
            opt.zero_grad(set_to_none=True)
            for p, gi in zip(params, g, strict=True):
                p.grad = gi.clone()
            for p in opt_heads[task].parameters():
                p.grad = torch.ones_like(p)
            before = [p.detach().clone() for p in params]
            if method is not None:
                method.before_optimizer_step(opt, [task], params)
            opt.step()
            deltas.append([p.detach() - b for p, b in zip(params, before, strict=True)])
        return opt, params, deltas

    def alone(task):
        layer = torch.nn.Linear(3, 3)
        layer.load_state_dict(shared.state_dict())
        params = list(layer.parameters())
        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.0)
        deltas = []
        for t, g in zip(order, grads, strict=True):
            if t != task:
                continue
            for p, gi in zip(params, g, strict=True):
                p.grad = gi.clone()
            before = [p.detach().clone() for p in params]
            opt.step()
            deltas.append([p.detach() - b for p, b in zip(params, before, strict=True)])
        return opt, params, deltas

    method = TaskMoments()
    opt, params, deltas = composed(method)
    assert method.active == "a" and set(method.moments) == {"b"}  # the last step's task is in the optimiser
    ref = {t: alone(t) for t in ("a", "b")}
    sets = {"a": {i: opt.state[p] for i, p in enumerate(params)}, "b": method.moments["b"]}
    for task in ("a", "b"):
        ref_opt, ref_params, ref_deltas = ref[task]
        for i, p in enumerate(ref_params):
            want, got = ref_opt.state[p], sets[task][i]
            assert set(got) == set(want) == {"step", "exp_avg", "exp_avg_sq"}
            assert all(torch.equal(got[k], want[k]) for k in want), (task, i)
        assert got["step"].item() == order.count(task)
        mine = [d for t, d in zip(order, deltas, strict=True) if t == task]
        # every step of the task is its AdamW-alone step (up to the float32 rounding of p - p_before; the
        # steps are about lr = 0.01, and plain AdamW's differ from them by far more)
        for d, r in zip(mine, ref_deltas, strict=True):
            assert all(torch.allclose(x, y, rtol=0, atol=1e-6) for x, y in zip(d, r, strict=True))

    plain_opt, plain_params, plain_deltas = composed(None)  # the shared moments: not any one task's
    assert plain_opt.state[plain_params[0]]["step"].item() == len(order)
    first_a_after_b = order.index("a", order.index("b"))
    assert not torch.allclose(plain_deltas[first_a_after_b][0], deltas[first_a_after_b][0])


def test_task_moments_state_round_trips_and_refuses_another_trunk():
    from lumina_core.training.composition.task_moments import TaskMoments

    layer = torch.nn.Linear(3, 3)
    params = list(layer.parameters())
    opt = torch.optim.AdamW(params, lr=0.01)
    method = TaskMoments()
    for task in ("a", "b"):
        for p in params:
            p.grad = torch.randn_like(p)
        method.before_optimizer_step(opt, [task], params)
        opt.step()
    state = method.state_dict()
    assert (
        state["active"] == "b" and set(state["moments"]) == {"a"} and set(state["moments"]["a"]) == {"0", "1"}
    )
    restored = TaskMoments()
    restored.load_state_dict(state)
    assert restored.active == "b" and torch.equal(
        restored.moments["a"][0]["exp_avg"], method.moments["a"][0]["exp_avg"]
    )
    with pytest.raises(ValueError, match="one task per step"):
        restored.before_optimizer_step(opt, ["a", "b"], params)
    wider = list(torch.nn.Linear(3, 4).parameters())
    with pytest.raises(ValueError, match="do not fit this trunk"):  # as many parameters, other shapes
        restored.before_optimizer_step(torch.optim.AdamW(wider), ["a"], wider)
    # the saved shapes all found again, but the trunk has one parameter more (a grown or reordered list)
    more = [*params, torch.nn.Parameter(torch.zeros(3))]
    again = TaskMoments()
    again.load_state_dict(state)
    assert state["parameters"] == 2
    with pytest.raises(ValueError, match="indexed over 2 trunk parameters and this trunk has 3"):
        again.before_optimizer_step(torch.optim.AdamW(more), ["a"], more)


def test_temperature_draws_follow_data_size_to_the_power_one_over_T():
    sizes = {"big": 10000, "small": 100, "off": 50}
    w = TemperatureDraws(T=2.0).draw_weights({"big": 0.2, "small": 0.8, "off": 0.0}, sizes)
    assert w["big"] / w["small"] == pytest.approx(10.0) and w["off"] == 0.0
    w1 = TemperatureDraws(T=1.0).draw_weights({"big": 1.0, "small": 1.0, "off": 1.0}, sizes)
    assert w1["big"] / w1["small"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no size"):
        TemperatureDraws().draw_weights({"a": 1.0}, {"a": None})


def test_shared_start_gives_same_shaped_adapters_the_first_tasks_weights_and_leaves_others_alone(tmp_path):
    from lumina_core.training.composition.shared_start import SharedStart, adapter_groups

    torch.manual_seed(0)
    plain = build_run(tiny_recipe(tmp_path, two_tasks()))
    a, b = (dict(plain.model.adapters[n].named_parameters()) for n in ("a", "b"))
    assert not torch.equal(a["x_embedder.weight"], b["x_embedder.weight"])  # independent random starts
    torch.manual_seed(0)
    shared = build_run(tiny_recipe(tmp_path, two_tasks(), composition=methods("shared_start")))
    a2, b2 = (dict(shared.model.adapters[n].named_parameters()) for n in ("a", "b"))
    assert set(a2) == set(b2) and all(torch.equal(a2[k], b2[k]) for k in a2)
    assert all(torch.equal(a2[k], a[k]) for k in a2)  # the first task's own start, copied (not redrawn)
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(a2.values(), b2.values(), strict=True))  # not tied
    # groups by parameter names and shapes: a different token width is its own adapter
    model = torch.nn.Module()
    model.adapters = torch.nn.ModuleDict(
        {"x": torch.nn.Linear(2, 3), "y": torch.nn.Linear(4, 3), "z": torch.nn.Linear(2, 3)}
    )
    assert adapter_groups(model, ["x", "y", "z"]) == [["x", "z"]]
    before = model.adapters["y"].weight.clone()
    with pytest.warns(UserWarning, match="changes nothing"):
        SharedStart().prepare_model(model, ["x", "y"])
    assert torch.equal(model.adapters["y"].weight, before)


def test_a_fresh_run_with_same_shaped_adapters_and_no_shared_start_says_so_once(tmp_path, capsys):
    def recipe(out, steps, *names):
        return tiny_recipe(
            out, two_tasks(), composition=methods(*names), mixing="weighted", max_steps=steps, ckpt_every=2
        )

    train(recipe(tmp_path / "moments", 2, "task_moments"))
    said = capsys.readouterr().out
    assert said.count("note: tasks a and b have adapters of the same shapes") == 1
    assert "train.composition=[task_moments, shared_start]" in said
    train(recipe(tmp_path / "moments", 4, "task_moments"), resume="last")  # it keeps the starts it had
    assert "shared_start" not in capsys.readouterr().out
    train(recipe(tmp_path / "shared", 2, "shared_start"))
    assert "note: tasks" not in capsys.readouterr().out
    # drawing and reading the same digits: same-shaped adapters, other objectives; a shared start did not pay there
    from lumina_core.training.composition.shared_start import unshared_note

    model = build_run(recipe(tmp_path / "x", 2)).model
    assert unshared_note(model, {"a": "flow_matching", "b": "classification"}, []) is None
    assert "tasks a and b" in unshared_note(model, {"a": "flow_matching", "b": "flow_matching"}, [])


@pytest.mark.parametrize("family", ["next_dit", "unified"])
def test_task_embedding_starts_at_zero_so_the_model_starts_as_the_plain_one(tmp_path, family):
    from lumina_core.data import collate_items

    # the embedding reaches either trunk family's conditioning vector
    recipe = functools.partial(family_recipe, tmp_path, family)

    torch.manual_seed(0)
    plain = build_run(recipe())
    torch.manual_seed(0)
    with_emb = build_run(recipe(composition=methods("task_embedding")))
    assert with_emb.composition.names == ["task_embedding"]
    emb = with_emb.model.adapters["a"].task_embedding
    assert emb.shape == (with_emb.model.config.cond_dim,) and not emb.any()
    for model in (plain.model, with_emb.model):  # make the blocks' modulation read c
        torch.manual_seed(1)
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p)) if p.dim() > 1 else None
    task = plain.task("a")
    items = collate_items([task.dataset("train")[i] for i in range(2)])
    batch, cond = task.plugin.tokenize(items["samples"]), task.conditioner.encode(items["conditions"])
    for p, q in zip(
        plain.model.parameters(),
        [p for n, p in with_emb.model.named_parameters() if "task_embedding" not in n],
        strict=True,
    ):
        q.data.copy_(p.data)
    out_plain = plain.model(batch, 0.3, cond, task="a")
    assert torch.equal(with_emb.model(batch, 0.3, cond, task="a"), out_plain)
    with torch.no_grad():
        emb.add_(1.0)
    assert not torch.allclose(with_emb.model(batch, 0.3, cond, task="a"), out_plain)
    assert torch.equal(with_emb.model(batch, 0.3, cond, task="b"), plain.model(batch, 0.3, cond, task="b"))


@pytest.mark.parametrize("family", ["next_dit", "unified"])
def test_task_modulation_gives_each_task_its_own_block_modulation_and_freezes_the_trunks(tmp_path, family):
    from lumina_core.data import collate_items
    from lumina_core.model.family import modulation_linear
    from lumina_core.training.build import trainable_modules

    recipe = functools.partial(family_recipe, tmp_path, family)

    torch.manual_seed(0)
    plain = build_run(recipe())
    torch.manual_seed(0)
    run = build_run(recipe(composition=methods("task_modulation")))
    model = run.model
    streams = model.trunk.modulated_streams()
    assert "layers" in streams and (family == "next_dit") == ("noise_refiner" not in streams)
    for name in ("a", "b"):  # one zero-initialised modulation per modulated block, shaped like the block's own
        own = model.adapters[name].task_modulation
        assert set(own) == set(streams)
        for stream, widths in streams.items():
            assert [m[-1].out_features for m in own[stream]] == widths
            assert all(not p.any() for p in own[stream].parameters())
    shared = {id(p) for s in streams for b in getattr(model.trunk, s) for p in modulation_linear(b).parameters()}
    assert shared and all(not p.requires_grad for p in model.trunk.parameters() if id(p) in shared)
    trained = {id(p) for m in trainable_modules(model, run.conditioners).values() for p in m.parameters()
               if p.requires_grad}  # fmt: skip
    assert not shared & trained  # the trunk's modulation is not trained; the tasks' own are
    assert all(id(p) in trained for p in model.adapters["a"].task_modulation.parameters())

    with torch.no_grad():  # the same weights as the plain model, modulation read off c
        named = dict(model.named_parameters())
        for n, p in plain.model.named_parameters():
            p.add_(0.05 * torch.randn_like(p)) if p.dim() > 1 and "adaLN" not in n else None
            named[n].copy_(p)
    task = plain.task("a")
    items = collate_items([task.dataset("train")[i] for i in range(2)])
    batch, cond = task.plugin.tokenize(items["samples"]), task.conditioner.encode(items["conditions"])
    out_a, out_b = plain.model(batch, 0.3, cond, task="a"), plain.model(batch, 0.3, cond, task="b")
    assert torch.equal(model(batch, 0.3, cond, task="a"), out_a)  # zero own modulation: the plain model
    with torch.no_grad():
        for p in model.adapters["a"].task_modulation.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert not torch.allclose(model(batch, 0.3, cond, task="a"), out_a)  # task a's own modulation acts on a
    assert torch.equal(model(batch, 0.3, cond, task="b"), out_b)  # and on a only
    out = model(batch, 0.3, cond, task="a").sum()
    out.backward()
    assert all(p.grad is None for p in model.trunk.parameters() if id(p) in shared)
    assert all(p.grad is None for p in model.adapters["b"].task_modulation.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.adapters["a"].task_modulation.parameters())


def test_task_modulation_trains_each_tasks_own_and_sample_and_eval_build_it(tmp_path):
    out = train(tiny_recipe(tmp_path / "r", two_tasks(), max_steps=4, ckpt_every=4, mixing="all",
                            composition=methods("task_modulation")))  # fmt: skip
    w = weights_of(out, 4)
    own = {k: v for k, v in w.items() if ".task_modulation." in k}
    assert own and all(k.startswith(("model.adapters.a.", "model.adapters.b.")) for k in own)
    a = {k.split("task_modulation.")[1]: v for k, v in own.items() if ".adapters.a." in k}
    b = {k.split("task_modulation.")[1]: v for k, v in own.items() if ".adapters.b." in k}
    assert set(a) == set(b) and any(v.abs().sum() > 0 for v in a.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)  # each task trained its own
    trunk_mod = [v for k, v in w.items() if k.startswith("model.trunk.") and "adaLN_modulation" in k]
    assert trunk_mod and all(not v.any() for v in trunk_mod)  # the trunk's stayed at its (zero) start


@pytest.mark.parametrize("family", ["next_dit", "unified"])
def test_task_lora_gives_each_task_its_own_low_rank_update_of_every_projection(tmp_path, family):
    from lumina_core.data import collate_items
    from lumina_core.model.family import block_streams
    from lumina_core.training.composition.task_lora import PROJECTIONS

    recipe = functools.partial(family_recipe, tmp_path, family)

    torch.manual_seed(0)
    plain = build_run(recipe())
    run = build_run(recipe(composition=[{"name": "task_lora", "params": {"rank": 4, "alpha": 8}}]))
    model = run.model
    streams = block_streams(model.trunk)
    assert set(streams) == ({"layers"} if family == "next_dit" else {"layers", "noise_refiner", "context_refiner"})
    for name in ("a", "b"):  # one update per projection of every block, of the projection's shapes, B zero
        own = model.adapters[name].task_lora
        assert set(own) == set(streams)
        for stream, blocks in streams.items():
            for block, updates in zip(blocks, own[stream], strict=True):
                for proj, path in PROJECTIONS:
                    linear, update = block.get_submodule(path), updates[proj]
                    assert update.down.weight.shape == (4, linear.in_features)
                    assert update.up.weight.shape == (linear.out_features, 4) and not update.up.weight.any()
                    assert update.scale == 2.0
    with torch.no_grad():  # the same shared weights as the plain model
        named = dict(model.named_parameters())
        for n, p in plain.model.named_parameters():
            p.add_(0.05 * torch.randn_like(p)) if p.dim() > 1 else None
            named[n].copy_(p)
    task = plain.task("a")
    items = collate_items([task.dataset("train")[i] for i in range(2)])
    batch, cond = task.plugin.tokenize(items["samples"]), task.conditioner.encode(items["conditions"])
    out_a, out_b = plain.model(batch, 0.3, cond, task="a"), plain.model(batch, 0.3, cond, task="b")
    assert torch.equal(model(batch, 0.3, cond, task="a"), out_a)  # B = 0: the plain model
    for proj, _ in PROJECTIONS:  # each projection's update acts on task a's output, and on a only
        update = model.adapters["a"].task_lora["layers"][0][proj]
        with torch.no_grad():
            update.up.weight.normal_(0, 0.1)
        assert not torch.allclose(model(batch, 0.3, cond, task="a"), out_a), proj
        assert torch.equal(model(batch, 0.3, cond, task="b"), out_b)
        with torch.no_grad():
            update.up.weight.zero_()
    model.adapters["a"].task_lora["layers"][0]["w2"].up.weight.data.normal_(0, 0.1)
    model(batch, 0.3, cond, task="a").sum().backward()
    assert all(p.grad is None for p in model.adapters["b"].task_lora.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapters["a"].task_lora.parameters())
    assert all(p.requires_grad for p in model.trunk.parameters())  # the shared weights still train
    with torch.no_grad():  # the same update merged into the weight gives the same output (the maths above)
        update = model.adapters["a"].task_lora["layers"][0]["w2"]
        ref = model(batch, 0.3, cond, task="a")
        w2 = model.trunk.layers[0].feed_forward.w2.weight
        w2 += update.scale * update.up.weight @ update.down.weight
        update.up.weight.zero_()
        torch.testing.assert_close(model(batch, 0.3, cond, task="a"), ref, rtol=1e-5, atol=1e-5)


def test_task_lora_refuses_bad_parameters():
    from lumina_core.training.composition.task_lora import TaskLoRA

    with pytest.raises(ValueError, match="rank must be a positive integer"):
        TaskLoRA(rank=0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        TaskLoRA(rank=4, alpha=0)


def test_a_checkpoint_of_another_composition_is_refused_with_the_composition_to_name(tmp_path):
    """Methods that add weights (task_modulation) make a run's checkpoint not fit a recipe without them, and the
    other way round: the message names the composition the run was trained with."""
    from lumina_core.training.checkpoint import CheckpointError
    from lumina_core.training.weights import load_run

    out = train(tiny_recipe(tmp_path / "r", two_tasks(), max_steps=2, ckpt_every=2, mixing="weighted"))
    with pytest.raises(CheckpointError) as err:
        load_run(tiny_recipe(tmp_path / "r", two_tasks(), mixing="weighted", composition=methods("task_modulation")), out)
    assert "task_modulation" in str(err.value)
    assert "trained with train.composition=[] and the recipe names [task_modulation]" in str(err.value)
    assert "add 'train.composition=[]' to the command" in str(err.value)


def test_init_from_a_run_without_the_tasks_own_parts_starts_them_at_zero_updates(tmp_path, capsys):
    """A trunk trained with the plain sum seeds a run whose composition adds per-task parts (task_embedding,
    task_modulation, task_lora): everything the checkpoint has is loaded, the added parts keep their identity
    start, so the new run starts as the loaded model; a checkpoint missing anything else is still refused."""
    from lumina_core.data import collate_items
    from lumina_core.training.checkpoint import CheckpointError
    from lumina_core.training.weights import load_run, prepare_weights

    base = train(tiny_recipe(tmp_path / "base", two_tasks(), max_steps=2, ckpt_every=2, mixing="weighted"))
    loaded = load_run(tiny_recipe(tmp_path / "base", two_tasks(), mixing="weighted"), base)
    own = methods("task_embedding", "task_modulation", "task_lora")
    cfg = tiny_recipe(tmp_path / "new", two_tasks(), mixing="weighted", composition=own)
    cfg.train.init_from = str(base / "checkpoints" / "last")
    parts = build_run(cfg)
    capsys.readouterr()
    prepare_weights(parts, cfg)
    note = capsys.readouterr().out
    assert "has no weights for the tasks' own parts" in note
    assert "a: task_embedding, task_modulation, task_lora; b: task_embedding, task_modulation, task_lora" in note
    task = loaded.task("a")
    items = collate_items([task.dataset("train")[i] for i in range(2)])
    batch, cond = task.plugin.tokenize(items["samples"]), task.conditioner.encode(items["conditions"])
    with torch.no_grad():
        for name in ("a", "b"):  # the loaded model, whatever the own parts hold at their start
            torch.testing.assert_close(parts.model(batch, 0.3, cond, task=name), loaded.model(batch, 0.3, cond, task=name))
    # the run trains from there
    out = train(cfg)
    assert weights_of(out, 4)["model.adapters.a.task_embedding"].abs().sum() > 0
    # anything else missing is refused as before
    cfg.model.n_layers = 3
    with pytest.raises(CheckpointError, match="model.n_layers is 2 in the checkpoint and 3 in the recipe"):
        prepare_weights(build_run(cfg), cfg)


# -- validation -----------------------------------------------------------------------------------------------------
def test_validate_names_a_composition_the_recipe_cannot_use(tmp_path):
    from omegaconf import OmegaConf

    from lumina_core.config.validate import validate_recipe

    def problems(mixing: str, composition: list) -> list[str]:
        cfg = OmegaConf.to_container(tiny_recipe(tmp_path, two_tasks(), mixing=mixing))
        cfg["train"]["composition"] = composition
        return validate_recipe(cfg, check_build=False)

    found = problems("weighted", ["pcgrad"])
    assert any("train.composition.0: pcgrad needs train.mixing=all" in p for p in found), found
    found = problems("all", [{"name": "temperature", "params": {"T": 2.0}}])
    assert any("temperature needs train.mixing=weighted" in p for p in found), found
    found = problems("all", ["pcgard"])
    assert any(
        "train.composition.0.name: unknown composition method 'pcgard'; did you mean 'pcgrad'" in p
        for p in found
    ), found
    found = problems("weighted", [{"name": "loss_norm", "params": {"betta": 0.9}}])
    assert any("train.composition.0.params" in p and "betta" in p for p in found), found
    found = problems("all", ["pcgrad", "grad_norm"])
    assert any("at most one method may compute the gradients" in p for p in found), found
    assert problems("all", ["pcgrad", "loss_norm", "task_embedding"]) == []
    found = problems("all", ["task_moments"])
    assert any(
        "train.composition.0: task_moments needs train.mixing=weighted (got 'all'): under 'all' a step trains "
        "every task at once" in p
        for p in found
    ), found
    assert problems("weighted", ["task_moments", "loss_norm", "task_embedding"]) == []
    assert problems("weighted", ["temperature", "loss_norm"]) == []
    assert problems("weighted", ["task_moments", "task_modulation"]) == []
    assert problems("all", ["pcgrad", "task_modulation"]) == []
    cfg = OmegaConf.to_container(tiny_recipe(tmp_path, two_tasks(), mixing="weighted"))
    cfg["train"].update(composition=["task_modulation"], strategy="fsdp")
    found = validate_recipe(cfg, check_build=False)
    assert any("task_modulation does not work with train.strategy=fsdp" in p for p in found), found
    cfg["train"].update(composition=["task_lora"])
    found = validate_recipe(cfg, check_build=False)
    assert any("task_lora does not work with train.strategy=fsdp" in p for p in found), found
    assert problems("weighted", ["task_moments", "task_modulation", {"name": "task_lora", "params": {"rank": 8}}]) == []
    found = problems("weighted", [{"name": "task_lora", "params": {"rank": 0}}, {"name": "loss_norm", "params": {"beta": 5}}])
    assert "train.composition.0: task_lora: rank must be a positive integer; got 0" in found, found
    assert "train.composition.1: loss_norm: beta must be in [0, 1); got 5" in found, found  # values, not names only


def test_gradient_methods_are_refused_on_several_processes_by_validate_and_train(tmp_path, capsys):
    """grad_norm and pcgrad compute each task's gradient themselves, outside DDP's averaging: a run on several
    processes (or nodes, or FSDP) is refused by `config validate` and `train` alike, in one paragraph, before
    any process starts; the methods that only touch losses, draws or conditioning run there."""
    from omegaconf import OmegaConf

    from lumina_core.cli.main import main
    from lumina_core.config.validate import validate_recipe

    def problems(composition: list, **train: object) -> list[str]:
        cfg = OmegaConf.to_container(tiny_recipe(tmp_path, two_tasks(), mixing="all"))
        cfg["train"].update(composition=composition, **train)  # (train may set mixing)
        return validate_recipe(cfg, check_build=False)

    for method in ("grad_norm", "pcgrad"):
        found = problems([method], devices=2)
        assert any(f"{method} runs on one process only (train.devices=1)" in p for p in found), found
        assert any(f"{method} runs on one process only" in p for p in problems([method], num_nodes=2))
        assert any("fsdp" in p for p in problems([method], devices=2, strategy="fsdp"))
        assert problems([method]) == []
    assert problems(["loss_norm", "task_embedding"], devices=2) == []
    # task_moments: every rank draws the same task and holds the same optimiser state, so DDP is fine; FSDP's
    # sharded moments and the 8-bit optimisers' paged state are not swapped, so they are refused
    weighted = dict(mixing="weighted")
    assert problems(["task_moments"], devices=2, **weighted) == []
    found = problems(["task_moments"], devices=2, strategy="fsdp", **weighted)
    assert any(
        "task_moments does not work with train.strategy=fsdp (its per-task moments" in p for p in found
    )
    found = problems(["task_moments"], optimizer="adamw8bit", **weighted)
    assert any("task_moments needs train.optimizer=adamw (got 'adamw8bit'" in p for p in found), found
    assert problems([], devices=2) == []

    recipe = tmp_path / "two.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", two_tasks(), mixing="all"), recipe)
    for command in (["config", "validate"], ["train"]):
        code = main([*command, str(recipe), "train.devices=2", "train.composition=[pcgrad]"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert "pcgrad runs on one process only (train.devices=1)" in err and "train.composition=[]" in err
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


# -- runs ---------------------------------------------------------------------------------------------------------------
def test_diagnostics_log_each_task_and_leave_the_run_unchanged(tmp_path):
    common = dict(max_steps=6, ckpt_every=6, mixing="weighted")
    plain = train(tiny_recipe(tmp_path / "plain", two_tasks(), **common))
    diag = train(tiny_recipe(tmp_path / "diag", two_tasks(), diagnostics_every=2, **common))
    assert same(weights_of(plain, 6), weights_of(diag, 6))  # the probes do not move the run
    assert not (plain / "diagnostics.jsonl").exists()
    rows = read_diagnostics(diag)
    assert [r["step"] for r in rows] == [2, 4, 6]
    last = rows[-1]
    assert last["steps_a"] + last["steps_b"] == 6
    assert -1.0 <= last["cos_a_b"] <= 1.0 and last["trunk_grad_norm_a"] > 0 and last["trunk_grad_norm_b"] > 0
    assert last["lr_sum_a"] + last["lr_sum_b"] == pytest.approx(6e-3)  # constant LR 1e-3, six steps
    state = ckpt_io.load_state(diag / "checkpoints" / "step_0000006")
    assert state["diagnostics"]["steps"] == {"a": last["steps_a"], "b": last["steps_b"]}
    assert any(
        json.loads(line)["step"] == 4 for line in (diag / "diagnostics.jsonl").read_text().splitlines()
    )


@pytest.mark.parametrize(
    ("mixing", "composition"),
    [
        ("weighted", ["loss_norm", "task_embedding", {"name": "temperature", "params": {"T": 3.0}}]),
        ("all", ["pcgrad", "loss_norm"]),
        ("weighted", ["task_moments", "loss_norm", "shared_start"]),
        ("weighted", ["task_moments", "task_modulation"]),
        ("all", ["task_modulation", {"name": "task_lora", "params": {"rank": 2}}]),
    ],
)
def test_composition_state_resumes_bitwise(tmp_path, mixing, composition):
    def recipe(out, steps):
        return tiny_recipe(
            out, two_tasks(), max_steps=steps, ckpt_every=3, mixing=mixing, composition=methods(*composition)
        )

    straight = train(recipe(tmp_path / "a", 6))
    train(recipe(tmp_path / "b", 3))
    resumed = train(recipe(tmp_path / "b", 6), resume="last")
    assert same(weights_of(straight, 6), weights_of(resumed, 6))
    sa = ckpt_io.load_state(straight / "checkpoints" / "step_0000006")
    sb = ckpt_io.load_state(resumed / "checkpoints" / "step_0000006")
    assert same_state(sa["composition"], sb["composition"])
    names = [c if isinstance(c, str) else c["name"] for c in composition]
    assert sa["composition"]["methods"] == names
    if "loss_norm" in names:
        norm = sa["composition"]["state"][names.index("loss_norm")]
        assert sum(norm["count"].values()) == (6 if mixing == "weighted" else 12)
    if "task_embedding" in names:  # trained away from zero, saved with the weights
        assert weights_of(straight, 6)["model.adapters.a.task_embedding"].abs().sum() > 0
    if "task_moments" in names:  # the task not in the optimiser: its own moments of every trunk parameter
        moments = sa["composition"]["state"][names.index("task_moments")]
        other = ({"a", "b"} - {moments["active"]}).pop()
        assert moments["active"] in ("a", "b") and set(moments["moments"]) == {other}
        steps = {int(st["step"]) for st in moments["moments"][other].values()}
        assert steps == {sa["data_position"][other]}  # AdamW's step count of the task: its steps so far
    if "task_lora" in names:  # each task trained its own factors (B moved away from zero), saved with the weights
        w = weights_of(straight, 6)
        ups = {t: [v for k, v in w.items() if k.startswith(f"model.adapters.{t}.task_lora.") and ".up." in k]
               for t in ("a", "b")}  # fmt: skip
        assert all(ups[t] and any(v.abs().sum() > 0 for v in ups[t]) for t in ups)
        assert any(not torch.equal(x, y) for x, y in zip(ups["a"], ups["b"], strict=True))
    if "shared_start" in names:  # the copy is made at build only: the resumed adapters are the saved ones,
        w = weights_of(straight, 6)  # and training moved the two same-started adapters apart
        assert not torch.equal(w["model.adapters.a.x_embedder.weight"], w["model.adapters.b.x_embedder.weight"])
    if mixing == "weighted":  # temperature: equal sizes of the toy data, so equal weights whatever the recipe
        state = ckpt_io.load_state(straight / "checkpoints" / "step_0000006")
        assert sum(state["data_position"].values()) == 6


def test_resume_with_another_composition_is_refused(tmp_path):
    train(
        tiny_recipe(
            tmp_path / "r",
            two_tasks(),
            max_steps=2,
            ckpt_every=2,
            mixing="weighted",
            composition=methods("loss_norm"),
        )
    )
    with pytest.raises(ckpt_io.CheckpointError, match="train.composition"):
        train(
            tiny_recipe(
                tmp_path / "r",
                two_tasks(),
                max_steps=4,
                ckpt_every=2,
                mixing="weighted",
                composition=methods("plain"),
            ),
            resume="last",
        )


def test_task_moments_is_listed_validated_by_the_cli_and_changes_the_run(tmp_path, capsys):
    """`lumina plugins list` names it, `lumina config validate` accepts it under weighted mixing and refuses it
    under `all` (exit 2, the reason, no traceback), and a run with it is not the plain run."""
    from omegaconf import OmegaConf

    from lumina_core.cli.main import main
    from lumina_core.registry import COMPOSITIONS

    assert "task_moments" in COMPOSITIONS.names()
    assert main(["plugins", "list", "--kind", "composition method"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert any(r[:1] == ["task_moments"] for r in rows), rows

    recipe = tmp_path / "two.yaml"
    OmegaConf.save(tiny_recipe(tmp_path / "run", two_tasks(), mixing="weighted"), recipe)
    assert main(["config", "validate", str(recipe), "train.composition=[task_moments]"]) == 0
    capsys.readouterr()
    code = main(["config", "validate", str(recipe), "train.mixing=all", "train.composition=[task_moments]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "task_moments needs train.mixing=weighted" in err

    common = dict(max_steps=6, ckpt_every=6, mixing="weighted")
    plain = train(tiny_recipe(tmp_path / "plain", two_tasks(), **common))
    moments = train(
        tiny_recipe(tmp_path / "moments", two_tasks(), composition=methods("task_moments"), **common)
    )
    assert not same(weights_of(plain, 6), weights_of(moments, 6))


def test_build_composition_takes_names_and_components():
    chain = build_composition(["plain", {"name": "loss_norm", "params": {"beta": 0.9}}])
    assert chain.names == ["plain", "loss_norm"] and chain.gradient_method is None
    assert build_composition(["pcgrad"]).gradient_method is not None

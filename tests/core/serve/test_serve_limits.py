"""What one request may ask, what it costs, and how a running one is stopped (issue 27: one request of shape
``3, 1024, 1024`` held the page for 12 minutes and a client that gave up did not cancel it)."""

from __future__ import annotations

import math
import threading

import pytest

from lumina_core.serve import Limits, ServeSession
from lumina_core.serve.jobs import Busy, Cancelled, JobQueue, Ticket
from lumina_core.serve.limits import CostModel, Observed, estimate, fit_cost, refusal


@pytest.fixture(scope="module")
def session(tiny_run, tmp_path_factory):
    cfg, _ = tiny_run
    return ServeSession(cfg, "last", out_dir=tmp_path_factory.mktemp("limits"))


# -- bounds of one request ------------------------------------------------------------------------------
def test_a_shape_far_beyond_the_trained_size_is_refused_before_it_starts(session):
    # trained on 16x16 pixels in 2x2 patches: 64 tokens per sample; the page allows 4x that
    r = session.generate(
        "shapes", "a red circle", shape="3, 48, 48"
    )  # 576 tokens: small enough to run, refused
    assert not r.ok and "that shape is 576 tokens per sample, the limit is 256" in r.message
    assert session.trained_tokens("shapes") == 64 and session.max_tokens("shapes") == 256
    r = session.generate("shapes", "a red circle", shape="3, 1024, 1024")
    assert not r.ok and not r.items
    assert r.message == (
        "shape (3, 1024, 1024): too large for this page: that shape is 262144 tokens per sample, the limit is 256 "
        "(4x the 64 the run was trained on per sample; the operator can change it with --max-tokens); ask for a "
        "smaller shape"
    )
    r = session.generate("shapes", "a red circle", shape="3, 32, 32")  # 256 tokens: at the limit
    assert r.ok, r.message


def test_the_operators_limits_replace_the_defaults(tiny_run, tmp_path):
    cfg, _ = tiny_run
    s = ServeSession(cfg, "last", out_dir=tmp_path, limits=Limits(max_tokens=100, max_samples=2, max_steps=5))
    assert "up to 2 samples, 5 steps, 100 tokens per sample (trained on 64)" in s.limits_text("shapes")
    r = s.generate("shapes", "a cat", shape="3, 24, 24")  # 144 tokens
    assert "the limit is 100 (set by the operator (--max-tokens))" in r.message
    assert (
        "from 1 to 5 (the page's limit, --max-steps); got 6" in s.generate("shapes", "a cat", steps=6).message
    )
    assert (
        "from 1 to 2 (the page's limit, --max-samples); got 3" in s.generate("shapes", "a cat", num=3).message
    )
    assert s.generate("shapes", "a cat", steps=5, num=2).ok
    health = s.health()
    assert (
        health["limits"]["max_tokens"] == {"shapes": 100, "clouds": 100}
        and health["limits"]["max_steps"] == 5
    )


def test_bad_operator_limits_are_one_message():
    with pytest.raises(
        ValueError, match=r"--max-samples must be 1 to 16, got 0; --max-seconds must be a positive"
    ):
        Limits(max_samples=0, max_seconds=float("nan"))


def test_a_request_estimated_over_the_seconds_limit_is_refused(tiny_run, tmp_path):
    cfg, _ = tiny_run
    s = ServeSession(cfg, "last", out_dir=tmp_path, limits=Limits(max_seconds=30), recalibrate_s=math.inf)
    s.cost = CostModel(params=10_000, layers=1, dim=32, heads=2, overhead_s=0.5, seconds_per_flop=0.0)
    # euler, 3 steps: 3 evaluations of 0.5 s, guided (cfg 2): fits
    assert s.prepare("shapes", "a cat").estimate.seconds == pytest.approx(1.5)
    r = s.generate("shapes", "a cat", steps=61)  # 61 x 0.5 s = 30.5 s
    assert not r.ok and r.message.startswith(
        "too slow for this page: 1 sample(s) x 64 tokens, 61 network evaluations"
    )
    assert "about 30.5 s on this machine, the limit is 30.0 s per request (--max-seconds)" in r.message
    r = s.generate("shapes", "a cat", steps=40, solver="midpoint")  # 2 evaluations a step: 40 s
    assert not r.ok and "80 network evaluations" in r.message


def test_a_stale_cost_is_measured_again_before_a_request_is_refused_as_too_slow(tiny_run, tmp_path):
    """A machine busy at start-up makes every estimate too high; the page measures again rather than refuse."""
    cfg, _ = tiny_run
    s = ServeSession(cfg, "last", out_dir=tmp_path, limits=Limits(max_seconds=600), recalibrate_s=0.0)
    s.cost = too_high = CostModel(
        params=10_000, layers=1, dim=32, heads=2, overhead_s=1000, seconds_per_flop=0.0
    )
    r = s.generate("shapes", "a cat")  # 3 evaluations "of 1000 s" each
    assert r.ok, r.message
    assert s.cost != too_high and s.cost.eval_seconds(64, 2) < 200  # the tiny trunk, measured again


def test_cost_model_known_answers():
    cost = CostModel(params=1000, layers=2, dim=8, heads=2, overhead_s=0.01, seconds_per_flop=1e-9)
    # flops = B N (2P + 4 L d N) = 2 * 10 * (2000 + 640)
    assert cost.flops(10, 2) == 2 * 10 * (2000 + 4 * 2 * 8 * 10)
    t1, t4 = cost.eval_seconds(10, 1), cost.eval_seconds(10, 4)
    fitted = fit_cost(1000, 2, 8, 2, 10, t1, t4)
    assert fitted.overhead_s == pytest.approx(0.01) and fitted.seconds_per_flop == pytest.approx(1e-9)
    noisy = fit_cost(1000, 2, 8, 2, 10, 0.2, 0.1)  # batch 4 measured faster than batch 1: all of it is flops
    assert noisy.overhead_s == 0 and noisy.eval_seconds(10, 4) == pytest.approx(0.2)
    est = estimate(cost, 10, samples=3, evals=5, guided=True)
    assert est.batch == 6 and est.seconds == pytest.approx(5 * cost.eval_seconds(10, 6))
    assert est.attention_bytes == 4 * 6 * 2 * 100
    assert refusal(est, 10, 4, Limits(), memory=est.attention_bytes * 2) is None
    assert "too large for this machine's memory" in refusal(est, 10, 4, Limits(), memory=est.attention_bytes)


def test_estimates_follow_what_requests_took_here():
    seen = Observed(keep=3)
    assert seen.factor == 1.0
    for est, actual in [(1.0, 3.0), (2.0, 2.0), (1.0, 10.0), (4.0, 8.0)]:
        seen.observe(est, actual)
    assert seen.factor == 2.0  # median of the last 3 ratios (1, 10, 2)


# -- stopping a request ------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_ticket_stops_when_cancelled_abandoned_or_late():
    clock = Clock()
    t = Ticket("tab", estimate_s=5, evals=10, deadline_s=20, abandon_s=4, clock=clock)
    t.started = 0.0
    clock.now = 3.0
    t.check()  # polled at 0, 3 s ago: still there
    t.poll()
    clock.now = 7.5
    with pytest.raises(
        Cancelled, match=r"stopped after 1 of about 10 evaluations: the client went away \(no word"
    ):
        t.check()

    late = Ticket("tab", estimate_s=5, evals=10, deadline_s=20, abandon_s=100, clock=clock)
    late.started, clock.now = 0.0, 21.0
    with pytest.raises(
        Cancelled, match=r"it ran past 20 s, twice the page's limit per request \(estimated 5.0 s\)"
    ):
        late.check()

    cancelled = Ticket("tab", 5, 10, 20, 100, clock=clock)
    cancelled.cancel("cancelled on the page")
    with pytest.raises(Cancelled, match="stopped after 0 of about 10 evaluations: cancelled on the page"):
        cancelled.check()


def test_a_cancelled_request_says_so_in_its_own_progress_line():
    """The page's Cancel handler writes no status (its reply could land after the request's final line and
    overwrite it); the request's own progress stream says it is being cancelled instead."""
    t = Ticket("tab", 5, 10, 20, 100, clock=Clock())
    assert ServeSession.running_line(t) is None  # waiting: the queue's line
    t.started = 0.0
    assert ServeSession.running_line(t).startswith("generating: 0 of 10")
    t.cancel("cancelled on the page")
    assert ServeSession.running_line(t) == (
        "cancelling: cancelled on the page; it stops at the next network evaluation"
    )


def _blocker():
    """A job that holds the worker until released (bounded: 200 checks of 50 ms at most)."""
    entered, release = threading.Event(), threading.Event()

    def work(ticket):
        entered.set()
        for _ in range(200):
            ticket.check()
            if release.wait(0.05):
                return "released"
        return "timed out"

    return work, entered, release


def test_small_requests_go_before_a_large_one_and_the_queue_is_bounded():
    q = JobQueue(max_waiting=2)
    work, entered, release = _blocker()
    first = q.submit(work, estimate_s=1.0, evals=1, owner="a")
    assert entered.wait(10)
    order: list[str] = []
    large = q.submit(lambda t: order.append("large"), estimate_s=100.0, evals=1)
    small = q.submit(lambda t: order.append("small"), estimate_s=1.0, evals=1)
    with pytest.raises(
        Busy, match=r"busy: 2 requests are already waiting \(the operator allows 2, --max-waiting\)"
    ):
        q.submit(lambda t: None, estimate_s=1.0, evals=1)
    assert q.snapshot()["waiting"] == 2 and q.snapshot()["running"] is not None
    assert q.ahead_of(large)[0] == 2  # the running one and the small one
    release.set()
    assert large.wait(10) and small.wait(10) and first.result == "released"
    assert order == ["small", "large"]
    q.close()


def test_cancel_stops_the_running_request_of_its_owner_only():
    q = JobQueue(max_waiting=4)
    work, entered, release = _blocker()
    running = q.submit(work, estimate_s=1.0, evals=200, owner="tab-1")
    assert entered.wait(10)
    waiting_other = q.submit(lambda t: "done", estimate_s=1.0, evals=1, owner="tab-2")
    waiting_mine = q.submit(lambda t: "never", estimate_s=1.0, evals=1, owner="tab-1")
    assert q.cancel("tab-1", "cancelled on the page") == 2
    assert running.wait(10) and isinstance(running.result, Cancelled)
    assert "cancelled on the page" in str(running.result)
    assert waiting_mine.wait(10) and isinstance(waiting_mine.result, Cancelled)  # never started
    assert waiting_other.wait(10) and waiting_other.result == "done"
    q.close()


def test_a_session_request_is_cancelled_mid_way_and_the_next_one_runs(session, monkeypatch):
    """The page's path: submit, cancel while the model is evaluating, the worker is free for the next."""
    model = session._parts.model
    inside, release = threading.Event(), threading.Event()
    real_velocity = model.velocity

    def slow_velocity(*args, **kwargs):
        inside.set()
        release.wait(10)
        return real_velocity(*args, **kwargs)

    monkeypatch.setattr(model, "velocity", slow_velocity)
    ticket = session.submit("shapes", "a red circle", steps=50, owner="tab")
    assert inside.wait(30)
    assert session.cancel("tab") == 1
    release.set()
    assert ticket.wait(30)
    r = session.result(ticket)
    assert not r.ok and r.message.startswith("stopped after 1 of about 50 evaluations: cancelled on the page")
    monkeypatch.undo()
    after = session.submit("shapes", "a blue square", owner="tab")
    assert after.wait(30) and session.result(after).ok


def test_a_request_whose_client_stops_asking_is_abandoned(tiny_run, tmp_path, monkeypatch):
    cfg, _ = tiny_run
    s = ServeSession(cfg, "last", out_dir=tmp_path, abandon_s=0.2)
    model = s._parts.model
    real_velocity = model.velocity
    calls: list[int] = []

    def slow_velocity(*args, **kwargs):
        calls.append(1)
        threading.Event().wait(0.1)  # 0.1 s per evaluation: 50 steps would take 5 s
        return real_velocity(*args, **kwargs)

    monkeypatch.setattr(model, "velocity", slow_velocity)
    ticket = s.submit("shapes", "a red circle", steps=50, owner="gone")  # nobody polls it
    assert ticket.wait(30)
    r = s.result(ticket)
    assert not r.ok and "the client went away" in r.message and len(calls) < 50
    s.close()

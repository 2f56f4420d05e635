"""The real page (gradio on 127.0.0.1) under load: many clients at once with requests of mixed sizes, some over
the page's limits, some abandoned mid-way, for a bounded time. The health endpoint answers throughout, every
request that was not abandoned gets an answer, the queue drains, and the server's memory (RSS) stays flat.

Issue 27: one request of shape ``3, 1024, 1024`` held the page for 12 minutes, every later request waited
behind it, and a client that gave up did not cancel it. Bounded: 6 clients, at most 8 requests each, 15 s.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the page needs gradio (pip install -e '.[serve]')")
httpx = pytest.importorskip("httpx")

from lumina_core.serve import Limits, ServeSession  # noqa: E402

SOAK_SECONDS = 15.0  # clients stop starting requests after this
CLIENTS = 6
REQUESTS_PER_CLIENT = 8
RSS_BOUND_MIB = 150  # growth of the server process's RSS from after the warm-up to the end
HTTP_TIMEOUT = 60.0  # any answer slower than this fails the test (the page did not answer)

#: (name, data for the generate endpoint, abandon after the first message)
MIX = [
    ("small", ["shapes", "a red circle on the left", 3, "euler", 2.0, 0, 1, ""], False),
    ("largest allowed", ["shapes", "a blue square", 100, "midpoint", 2.0, 1, 4, "3, 32, 32"], False),
    ("abandoned", ["shapes", "a green triangle", 100, "midpoint", 2.0, 2, 4, "3, 32, 32"], True),
    ("points", ["clouds", "3", 20, "heun", 1.0, 3, 2, ""], False),
    ("huge shape", ["shapes", "a red circle", 16, "euler", 2.0, 0, 1, "3, 1024, 1024"], False),
    ("too many steps", ["shapes", "a red circle", 1000, "euler", 2.0, 0, 1, ""], False),
    ("too many samples", ["shapes", "a red circle", 3, "euler", 2.0, 0, 99, ""], False),
]
REFUSALS = {
    "huge shape": "that shape is 262144 tokens per sample, the limit is 256",
    "too many steps": "steps must be a whole number from 1 to 100 (the page's limit, --max-steps); got 1000",
    "too many samples": "the number of samples must be a whole number from 1 to 4",
}


def _rss_mib() -> float:
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("reads the server's RSS from /proc (Linux)")
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate(client: httpx.Client, data: list, abandon: bool = False) -> str | None:
    """One request through gradio's REST API; the final status line, or None when abandoned (the stream is
    closed after its first message, as a client that gives up does)."""
    r = client.post("/gradio_api/call/generate", json={"data": data})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    event = None
    with client.stream("GET", f"/gradio_api/call/generate/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                if abandon:
                    return None
                if event == "complete":
                    return str(json.loads(line[5:])[0])
                if event == "error":
                    return f"gradio error: {line[5:].strip()}"
    return "the stream ended without a result"


def health(client: httpx.Client) -> dict:
    r = client.post("/gradio_api/run/health", json={"data": []})
    r.raise_for_status()
    return r.json()["data"][0]


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    from lumina_core.serve.app import launch

    cfg, _ = tiny_run
    session = ServeSession(
        cfg, "last", out_dir=tmp_path_factory.mktemp("soak"), limits=Limits(max_seconds=600, max_waiting=4),
        abandon_s=2.0,
    )  # fmt: skip
    port = _free_port()
    page = launch(session, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}", session
    finally:
        page.close()
        session.close()


def test_many_clients_mixed_sizes_some_abandoned_the_page_answers_and_memory_stays_flat(server, caplog):
    url, session = server
    caplog.set_level(logging.INFO, logger="lumina.serve")
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:  # warm-up: one of each, one at a time
        for _, data, abandon in MIX:
            generate(c, data, abandon)
    rss_before = _rss_mib()

    failures: list[str] = []
    answers: dict[str, list[str]] = {name: [] for name, _, _ in MIX}
    health_polls: list[dict] = []
    stop = threading.Event()
    deadline = time.monotonic() + SOAK_SECONDS

    def client_loop(k: int) -> None:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:
            for i in range(REQUESTS_PER_CLIENT):
                if time.monotonic() > deadline:
                    return
                name, data, abandon = MIX[(k + i * 3) % len(MIX)]
                try:
                    answer = generate(c, data, abandon)
                except Exception as exc:  # noqa: BLE001 - every failure is reported at the end
                    failures.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                if answer is not None:
                    answers[name].append(answer)

    def health_loop() -> None:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:
            for _ in range(
                int(SOAK_SECONDS * 20)
            ):  # bounded: one poll per 50 ms at most while the soak lasts
                if stop.wait(0.05):
                    return
                try:
                    health_polls.append(health(c))
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"health: {type(exc).__name__}: {exc}")

    pollers = [threading.Thread(target=health_loop)]
    clients = [threading.Thread(target=client_loop, args=(k,)) for k in range(CLIENTS)]
    for t in pollers + clients:
        t.start()
    for t in clients:
        t.join(SOAK_SECONDS + 4 * HTTP_TIMEOUT)
    stop.set()
    pollers[0].join(HTTP_TIMEOUT)
    assert not any(t.is_alive() for t in clients + pollers), "a client never got an answer"

    assert failures == [], failures
    assert health_polls and all(h["ok"] for h in health_polls)
    assert any(h["running"] is not None for h in health_polls), "no poll saw a request running"
    for name, expected in REFUSALS.items():
        assert answers[name] and all(expected in a for a in answers[name]), (name, answers[name])
    done = [a for name in ("small", "largest allowed", "points") for a in answers[name]]
    assert done, "no request was answered"
    # made, or (on a very busy machine) refused or stopped: always one line, never a hang
    outcomes = ("sample(s) of shape", "busy:", "stopped after", "too slow for this page")
    for a in done:
        assert any(o in a for o in outcomes), a
    assert any("sample(s) of shape" in a for a in done)

    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:  # the queue drains: abandoned work stops
        for _ in range(120):
            h = health(c)
            if h["running"] is None and h["waiting"] == 0:
                break
            time.sleep(0.5)
        assert h["running"] is None and h["waiting"] == 0, h
        assert "sample(s) of shape" in generate(c, MIX[0][1])  # and the page still works
    growth = _rss_mib() - rss_before
    print(f"soak: {sum(map(len, answers.values()))} answers, {len(health_polls)} health polls, "
          f"RSS {rss_before:.0f} MiB -> +{growth:.1f} MiB", file=sys.stderr)  # fmt: skip
    assert growth < RSS_BOUND_MIB, f"the server's RSS grew by {growth:.0f} MiB during the soak"


def test_values_past_the_sliders_are_one_line_not_a_traceback(server, capfd, caplog):
    url, _ = server
    caplog.set_level(logging.WARNING, logger="lumina.serve")
    capfd.readouterr()
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:
        bad = ["shapes", "a red circle", 1000, "euler", 99.0, "abc", 0, ""]  # gradio's sliders would raise
        answer = generate(c, bad)
    assert answer == "**Error:** the number of samples must be a whole number from 1 to 4 (the page's limit, " \
        "--max-samples); got 0"  # fmt: skip
    err = capfd.readouterr().err
    assert "Traceback" not in err and "greater than maximum" not in err, err
    refused = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert refused == ["lumina serve: refused a request: " + answer.removeprefix("**Error:** ")]

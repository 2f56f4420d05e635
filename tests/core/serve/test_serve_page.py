"""The page in a real browser (headless Chromium through playwright): it loads without fetching anything
from outside the machine, a prompt shows a result, a wrong prompt shows a message, the server keeps serving,
and a point-cloud task gets a 3-D viewer.

Needs Debian's Chromium (``apt-get install -y chromium``, see README); skipped with that reason otherwise.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("LUMINA_TEST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (or set LUMINA_TEST_CHROMIUM) "
        "to run the browser test of `lumina serve`",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = pytest.mark.slow  # a browser and a web server: about 10 s on top of the tiny training run

BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


_SESSIONS: list = []  # the session behind the page, for tests that slow its model down


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def page_url(tiny_run, tmp_path_factory):
    from lumina_core.serve import ServeSession
    from lumina_core.serve.app import launch

    cfg, _ = tiny_run
    session = ServeSession(cfg, "last", out_dir=tmp_path_factory.mktemp("page"))
    port = _free_port()
    _SESSIONS.append(session)
    blocks = launch(session, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()
        session.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-home")  # Chromium writes its config and caches here, not in ~
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}  # fmt: skip
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, env=env)
        try:
            yield b
        finally:
            b.close()


def _status_contains(page, text: str) -> None:
    try:
        page.wait_for_function(
            "t => (document.querySelector('#lumina-status') || {}).innerText.includes(t)",
            arg=text,
            timeout=60_000,
        )
    except sync_api.TimeoutError:
        pytest.fail(f"the status line never said {text!r}; it says {page.inner_text('#lumina-status')!r}")


def _local_page(browser, url: str):
    """A new tab on ``url`` that blocks and records every request not to this machine."""
    outside: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 1100})

    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    page.goto(url)
    return page, outside


def test_prompt_gives_a_result_and_bad_input_a_message(page_url, browser):
    page, outside = _local_page(browser, page_url)
    page.wait_for_selector("#lumina-generate", timeout=60_000)
    assert "type a caption" in page.inner_text("#lumina-task-info")
    assert page.locator("#lumina-curves").count() == 1  # the run's loss curves, written by training

    page.fill("#lumina-prompt textarea", "a red circle on the left")
    page.click("#lumina-generate")
    _status_contains(page, "1 sample(s) of shape (3, 16, 16)")
    page.wait_for_selector("#lumina-gallery img", timeout=30_000)
    src = page.locator("#lumina-gallery img").first.get_attribute("src")
    assert src and src.startswith("http://127.0.0.1") and ".png" in src
    assert page.request.get(src).ok  # the image is really served

    page.fill("#lumina-prompt textarea", "7")  # a class id for a text task
    page.click("#lumina-generate")
    _status_contains(page, "Error:")
    assert "text-conditioned: type a caption, not a class id" in page.inner_text("#lumina-status")

    page.fill("#lumina-prompt textarea", "a blue square")  # the server is still serving; Enter submits
    page.press("#lumina-prompt textarea", "Enter")
    _status_contains(page, "1 sample(s) of shape")
    assert outside == [], f"the page fetched from outside the machine: {outside}"


def test_point_cloud_task_shows_a_3d_viewer(page_url, browser):
    page, outside = _local_page(browser, page_url)
    page.wait_for_selector("#lumina-generate", timeout=60_000)
    page.click("#lumina-task input")
    page.get_by_role("option", name="clouds").click()
    page.wait_for_function(
        "() => document.querySelector('#lumina-task-info').innerText.includes('class id (0..7)')",
        timeout=30_000,
    )
    page.click("#lumina-examples input")  # pick a held-out class: it fills the prompt
    page.get_by_role("option").first.click()
    page.wait_for_function("() => /^[0-7]$/.test(document.querySelector('#lumina-prompt textarea').value)")
    page.click("#lumina-generate")
    _status_contains(page, "1 sample(s) of shape (64, 3)")
    page.wait_for_selector("#lumina-model3d-0 canvas", timeout=30_000)
    assert page.locator("#lumina-model3d-1").is_hidden()  # one sample, one viewer
    page.wait_for_timeout(1000)  # let the viewer load what it needs
    assert outside == [], f"the 3-D viewer fetched from outside the machine: {outside}"


def test_limits_are_shown_a_huge_shape_is_refused_and_cancel_stops_a_running_request(page_url, browser):
    """Issue 27: a request of shape 3, 1024, 1024 held the page for 12 minutes with no way to stop it."""
    import threading

    page, outside = _local_page(browser, page_url)
    page.wait_for_selector("#lumina-generate", timeout=60_000)
    limits = page.inner_text("#lumina-task-info")
    assert "up to 4 samples, 100 steps, 256 tokens per sample (trained on 64)" in limits
    page.fill("#lumina-prompt textarea", "a red circle")
    page.fill("#lumina-shape textarea", "3, 1024, 1024")
    page.click("#lumina-generate")
    _status_contains(page, "too large for this page: that shape is 262144 tokens per sample, the limit is")

    session = _SESSIONS[-1]
    model = session._parts.model
    real_velocity, inside, release = model.velocity, threading.Event(), threading.Event()

    def slow_velocity(*args, **kwargs):
        inside.set()
        release.wait(10)  # bounded: at most 10 s per evaluation
        return real_velocity(*args, **kwargs)

    real_cancel, cancelled = session.cancel, threading.Event()

    def cancel_seen(*args, **kwargs):  # calls through: the page's own cancel, noted when it has run
        out = real_cancel(*args, **kwargs)
        cancelled.set()
        return out

    model.velocity, session.cancel = slow_velocity, cancel_seen
    try:
        page.fill("#lumina-shape textarea", "")
        page.click("#lumina-generate")
        assert inside.wait(60)
        _status_contains(page, "generating: ")
        page.click("#lumina-cancel")
        # let the evaluation go on only once the server has the cancel: released earlier, a loaded machine
        # could finish the whole (tiny) sample before the click arrives, and the page would rightly show it
        assert cancelled.wait(60)
        release.set()
        _status_contains(page, "cancelled on the page")
        assert page.inner_text("#lumina-status").startswith("Error:")
    finally:
        release.set()
        del model.velocity, session.cancel  # the classes' own methods again
    page.click("#lumina-generate")
    _status_contains(page, "1 sample(s) of shape (3, 16, 16)")
    assert outside == []

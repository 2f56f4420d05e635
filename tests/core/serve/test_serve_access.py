"""Who can reach the page (issue 27): ``--host 0.0.0.0`` says what it exposes and needs a token; gradio's
"set share=True" hint is not printed (the project never makes a public link)."""

from __future__ import annotations

import socket

import pytest
from omegaconf import OmegaConf

from lumina_core.serve.access import TOKEN_ENV, exposure, is_local, resolve_token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_hosts_and_tokens():
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1") and is_local("127.0.0.2")
    assert not is_local("0.0.0.0") and not is_local("192.168.1.5") and not is_local("my-host")
    assert resolve_token("127.0.0.1", None, {}) == (None, "none")
    assert resolve_token("127.0.0.1", None, {TOKEN_ENV: "s3cret"}) == ("s3cret", f"${TOKEN_ENV}")
    assert resolve_token("0.0.0.0", "given", {TOKEN_ENV: "s3cret"}) == ("given", "--token")
    token, source = resolve_token("0.0.0.0", None, {})
    assert source == "generated" and len(token) >= 20 and resolve_token("0.0.0.0", None, {})[0] != token


def test_exposure_says_who_can_reach_the_page():
    local = "\n".join(exposure("127.0.0.1", 7860, None, "none"))
    assert "answers this machine only: http://127.0.0.1:7860" in local and "WARNING" not in local
    assert "no public share link is made" in local
    net = "\n".join(exposure("0.0.0.0", 7860, "tok123", "generated"))
    assert "WARNING: --host 0.0.0.0 opens the page to every network this machine is on" in net
    assert "anyone who can reach port 7860" in net and "tok123" in net
    from_env = "\n".join(exposure("10.0.0.7", 80, "tok123", f"${TOKEN_ENV}"))
    assert "the network of 10.0.0.7" in from_env and "tok123" not in from_env


@pytest.fixture
def recipe(tiny_run, tmp_path):
    cfg, _ = tiny_run
    path = tmp_path / "tiny.yaml"
    path.write_text("# Run: lumina train tiny.yaml\n" + OmegaConf.to_yaml(cfg))
    return path


def _serve(monkeypatch, capsys, argv):
    """Run ``lumina serve`` up to the launch (recorded instead of started); return (launch kwargs, stdout)."""
    import lumina_core.serve.app as app
    from lumina_core.cli.main import main

    launched: dict = {}
    monkeypatch.setattr(app, "launch", lambda session, **kw: launched.update(kw))
    assert main(["serve", *argv]) == 0
    return launched, capsys.readouterr().out


def test_cli_open_to_the_network_warns_and_generates_a_token(recipe, monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    launched, out = _serve(monkeypatch, capsys, [str(recipe), "--host", "0.0.0.0", "--port", "7999"])
    assert "WARNING: --host 0.0.0.0 opens the page to every network this machine is on" in out
    token = launched["token"]
    assert token and f"access token (type it on the login page, any user name): {token}" in out
    assert "limits for shapes: up to 4 samples, 100 steps, 256 tokens per sample (trained on 64)" in out

    monkeypatch.setenv(TOKEN_ENV, "from-the-env")
    launched, out = _serve(monkeypatch, capsys, [str(recipe), "--host", "0.0.0.0", "--max-tokens", "100"])
    assert launched["token"] == "from-the-env" and "from-the-env" not in out
    assert "limits for shapes: up to 4 samples, 100 steps, 100 tokens per sample" in out

    monkeypatch.delenv(TOKEN_ENV)
    launched, out = _serve(monkeypatch, capsys, [str(recipe)])
    assert launched["token"] is None and "answers this machine only" in out and "WARNING" not in out


def test_cli_refuses_bad_limits_in_one_paragraph(recipe, capsys):
    from lumina_core.cli.main import EXIT_USER_ERROR, main

    assert main(["serve", str(recipe), "--max-samples", "0", "--max-steps", "0"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "--max-steps must be at least 1, got 0; --max-samples must be 1 to 16, got 0" in err
    assert "Traceback" not in err


def test_launch_prints_no_share_hint_and_a_token_guards_the_page(tiny_run, tmp_path, capfd):
    pytest.importorskip("gradio", reason="the page needs gradio")
    httpx = pytest.importorskip("httpx")
    from lumina_core.serve import ServeSession
    from lumina_core.serve.app import launch

    cfg, _ = tiny_run
    session = ServeSession(cfg, "last", out_dir=tmp_path)
    port = _free_port()
    capfd.readouterr()
    page = launch(session, host="127.0.0.1", port=port, block=False, token="open-sesame")
    try:
        printed = capfd.readouterr()
        assert "share=True" not in printed.out + printed.err
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.post("/gradio_api/run/health", json={"data": []}).status_code == 401
            assert c.post("/login", data={"username": "x", "password": "wrong"}).status_code == 400
            assert c.post("/login", data={"username": "anyone", "password": "open-sesame"}).status_code == 200
            r = c.post("/gradio_api/run/health", json={"data": []})
            assert r.status_code == 200 and r.json()["data"][0]["loaded"] is True
    finally:
        page.close()
        session.close()

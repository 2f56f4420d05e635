"""Who can reach the page: this machine only, or a network; and the access token that guards a network.

``127.0.0.1`` (the default), ``localhost`` and ``::1`` answer this machine only. Any other address opens the
page to whoever can reach it on that network, so it needs a token: ``--token``, or the environment variable
``LUMINA_SERVE_TOKEN`` (which, unlike a flag, other users of the machine cannot read in the process list), or
one generated here and printed once. A visitor types the token on gradio's login page (any user name); an
API client logs in the same way (``POST /login``). No share link through a third party is ever made.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Callable

TOKEN_ENV = "LUMINA_SERVE_TOKEN"


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (the page answers this machine only)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(
    host: str, token: str | None, environ: dict[str, str] | None = None
) -> tuple[str | None, str]:
    """``(token, where it came from)``: ``--token``, else ``$LUMINA_SERVE_TOKEN``, else for a non-local host a
    fresh random one (``"generated"``); None for a local host with neither."""
    env = os.environ if environ is None else environ
    if token:
        return token, "--token"
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV], f"${TOKEN_ENV}"
    if not is_local(host):
        return secrets.token_urlsafe(16), "generated"
    return None, "none"


def check_token(token: str) -> Callable[[str, str], bool]:
    """gradio's ``auth`` callable: any user name, the token as the password (compared in constant time)."""

    def check(user: str, password: str) -> bool:
        return hmac.compare_digest(str(password).encode(), token.encode())

    return check


def _addresses() -> list[str]:
    """This machine's own addresses by its host name (no network is asked)."""
    try:
        found = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return sorted(
        {str(a[4][0]) for a in found if not ipaddress.ip_address(str(a[4][0]).split("%")[0]).is_loopback}
    )


def exposure(host: str, port: int, token: str | None, source: str) -> list[str]:
    """The lines printed at start: what is exposed, to whom, and how to get in."""
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    lines = []
    if is_local(host):
        lines.append(
            f"  the page answers this machine only: http://{url_host}:{port} (any user of this machine can open it)"
        )
    else:
        where = "every network this machine is on" if host in ("0.0.0.0", "::") else f"the network of {host}"
        seen = ", ".join(_addresses()) or "this machine's addresses"
        lines.append(
            f"  WARNING: --host {host} opens the page to {where}: anyone who can reach port {port} there "
            f"({seen}) can run the model on this machine's CPU/GPU and see what it makes."
        )
    if token is None:
        lines.append(f"  no access token (set --token or ${TOKEN_ENV} to require one)")
    elif source == "generated":
        lines.append(f"  access token (type it on the login page, any user name): {token}")
        lines.append(f"  (generated for this start; set ${TOKEN_ENV} to choose your own)")
    else:
        lines.append(f"  access token from {source}: required on the login page (any user name)")
    lines.append("  no public share link is made; nothing is sent outside this machine")
    return lines

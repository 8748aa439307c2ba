"""X-Forwarded-For is believed only from TRUSTED_PROXIES (nginx on this machine)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.ingress.proxy import TrustedProxy, parse_networks
from sales.errors import ConfigProblem
from sales.settings import load_settings


async def seen_by_app(
    peer: str, forwarded: str | None, trusted: list[str], proto: str | None = None
) -> tuple[str, str]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    headers = []
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    scope = {"type": "http", "client": (peer, 5555), "scheme": "http", "headers": headers}
    await TrustedProxy(app, parse_networks(trusted))(scope, None, None)
    return seen["client"][0], seen["scheme"]


async def test_only_a_trusted_proxy_may_say_who_the_client_is() -> None:
    trusted = ["127.0.0.1", "10.0.0.0/8"]
    assert await seen_by_app("127.0.0.1", "203.0.113.7", trusted, "https") == (
        "203.0.113.7",
        "https",
    )
    # A client writing its own header through nginx: the rightmost untrusted hop wins.
    assert await seen_by_app("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3", trusted) == (
        "203.0.113.7",
        "http",
    )
    # Straight from the internet: the header is ignored.
    assert await seen_by_app("198.51.100.9", "1.2.3.4", trusted, "https") == (
        "198.51.100.9",
        "http",
    )
    # No proxy configured: nothing is believed.
    assert await seen_by_app("127.0.0.1", "1.2.3.4", []) == ("127.0.0.1", "http")


def test_a_bad_trusted_proxy_is_reported(tmp_path: Any) -> None:
    with pytest.raises(ConfigProblem) as caught:
        load_settings({"TRUSTED_PROXIES": "127.0.0.1, nginx-box"}, env_file=tmp_path / "n")
    assert caught.value.problems == [
        ("environment", "TRUSTED_PROXIES", "'nginx-box' is not an IP address or network")
    ]

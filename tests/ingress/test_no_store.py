"""`Cache-Control: no-store` on every /api/* answer: leads, conversations and exports are
personal data that no browser cache or proxy may keep. Every route of the app is walked,
as the logged-in owner, so a route added tomorrow is covered too."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import make_settings, running_suite, suite_app
from tests.ingress.test_admin import PASSWORD, login

# What the owner reads: each must answer 200, and none may be stored.
PERSONAL = {
    "/api/chat/session/<session_id>",
    "/api/leads",
    "/api/leads/<int:lead_id>",
    "/api/leads/export.csv",
    "/api/leads/estadisticas",
    "/api/followups",
    "/api/followups/<int:lead_id>",
    "/api/leads/<int:lead_id>/identidad",
    "/api/simulate/sandbox",
    "/api/admin/unsupported",
}


def concrete(rule: str, lead_id: int) -> str:
    path = re.sub(r"<int:\w+>", str(lead_id), rule)
    return path.replace("<session_id>", "ana").replace("<channel>", "whatsapp")


def walk_order(route: tuple[str, str]) -> tuple[bool, bool, bool]:
    """Reads first, deletions after, logging out last: the walk keeps its lead and session."""
    method, rule = route
    return rule == "/api/auth/logout", method == "DELETE", method != "GET"


async def test_every_api_answer_is_no_store(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXIES="127.0.0.1")
    async with running_suite(settings) as (suite, client):
        assert suite.db is not None
        r = await client.post(
            "/api/chat", json={"message": "Soy Ana, 987654321, quiero agendar", "sessionId": "ana"}
        )
        assert r.status_code == 200
        csrf = await login(client)
        lead_id = (await client.get("/api/leads")).json()["data"][0]["id"]
        app = suite_app(suite)
        routes = sorted(
            (
                (method, rule.rule)
                for rule in app.url_map.iter_rules()
                if rule.rule.startswith("/api/")
                for method in rule.methods or ()
                if method not in ("HEAD", "OPTIONS")
            ),
            key=walk_order,
        )
        assert len(routes) >= 30
        answered: dict[str, int] = {}
        for method, rule in routes:
            r = await client.request(
                method,
                concrete(rule, lead_id),
                json=None if method == "GET" else {},
                headers={"X-CSRF-Token": csrf},
            )
            assert r.headers.get("cache-control") == "no-store", (method, rule, r.status_code)
            if method == "GET":
                answered[rule] = r.status_code
        assert {rule: answered.get(rule) for rule in PERSONAL} == dict.fromkeys(PERSONAL, 200)


async def test_errors_and_the_event_stream_are_no_store_too(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        missing = await client.get("/api/no-existe")
        too_big = await client.post(
            "/api/chat",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert (missing.status_code, too_big.status_code) == (404, 413)
        for r in (missing, too_big):
            assert r.headers["cache-control"] == "no-store"
        async with client.stream(
            "POST",
            "/api/chat",
            json={"message": "¿Cuál es el horario?", "sessionId": "sse"},
            headers={"Accept": "text/event-stream"},
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-store"
            async for _chunk in stream.aiter_bytes():
                pass
        # Pages and their assets are not personal: caching them stays allowed.
        assert "no-store" not in (await client.get("/assets/chat.css")).headers.get(
            "cache-control", ""
        )

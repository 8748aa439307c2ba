"""Every route that takes a body answers hostile JSON without a 5xx; the owner's routes,
which store what they are given, refuse a lone surrogate anywhere and text/plain with a
4xx (public routes check their own fields, tests/ingress/test_hostile_chat.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import running_suite, suite_app
from tests.ingress.test_admin import admin_settings, login

HOSTILE = (
    b'{"password": "\\ud83d", "texto": "\\ud83d", "message": "\\ud83d", "sessionId": "s",'
    b' "con": 1, "notas": "\\udc00", "de": "x", "mensaje": "\\ud83d", "version": 1}'
)


async def test_a_lone_surrogate_is_a_4xx_on_every_route_that_takes_a_body(
    tmp_path: Path,
) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        assert suite.db is not None
        r = await client.post(
            "/api/auth/login", content=HOSTILE, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and "Unicode" in r.text
        csrf = await login(client)
        app = suite_app(suite)
        tried = 0
        for rule in app.url_map.iter_rules():
            for method in (rule.methods or set()) & {"POST", "PUT", "PATCH"}:
                if "webhook" in rule.rule or rule.rule == "/api/auth/logout":
                    continue  # Meta's signed bodies: tests/ingress/test_hostile_webhooks.py
                path = re.sub(r"<int:\w+>", "1", re.sub(r"<\w+>", "whatsapp", rule.rule))
                headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
                r = await client.request(method, path, content=HOSTILE, headers=headers)
                owners = getattr(app.view_functions[rule.endpoint], "admin_only", False)
                low = 400 if owners else 200
                assert low <= r.status_code < 500, (method, path, r.status_code, r.text)
                r = await client.request(
                    method, path, content=b"x=1", headers={**headers, "Content-Type": "text/plain"}
                )
                assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
                tried += 1
        assert tried >= 10

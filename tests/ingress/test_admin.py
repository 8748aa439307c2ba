"""The admin API: nobody without the password, CSRF on every change, login throttled per
client, sessions that really end, and the leads work a salesperson does."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import make_settings, running_suite, suite_app

PASSWORD = "clave-de-prueba-KNOWN-123"
# Routes anyone may call: the chat and the page's own data, login, webhooks, health.
PUBLIC = {
    "/",
    "/dashboard",
    "/demo",  # the page itself tells a visitor to log in first (test_sandbox.py)
    "/widget.js",  # the chat on the sites of ALLOWED_ORIGINS (tests/pages/test_widget.py)
    "/privacidad",
    "/assets/<path:filename>",
    "/api/business",
    "/api/chat",
    "/api/chat/reset",
    "/api/chat/session/<session_id>",
    "/api/auth/login",
    "/api/whatsapp/webhook",
    "/api/instagram/webhook",
    "/health",
    "/health/live",
    "/health/ready",
    "/health/detailed",
    "/metrics",
}


def admin_settings(tmp_path: Path, **env: str) -> Any:
    return make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXIES="127.0.0.1", **env)


async def login(client: httpx.AsyncClient, client_ip: str = "198.51.100.1") -> str:
    r = await client.post(
        "/api/auth/login", json={"password": PASSWORD}, headers={"X-Forwarded-For": client_ip}
    )
    assert r.status_code == 200, r.text
    csrf: str = r.json()["csrfToken"]
    return csrf


async def test_every_admin_route_wants_a_session_and_changes_want_csrf(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        assert suite.db is not None
        app = suite_app(suite)
        admin: list[tuple[str, str]] = []
        for rule in app.url_map.iter_rules():
            view = app.view_functions[rule.endpoint]
            # The demo's routes are the owner's too unless DEMO_MODE=1 (tests/ingress/
            # test_sandbox.py): without it they must answer exactly like admin routes.
            if getattr(view, "admin_only", False) or getattr(view, "demo_or_owner", False):
                admin += [
                    (m, rule.rule) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")
                ]
            else:
                # A route that is not public must be admin-only: a forgotten guard fails here.
                assert rule.rule in PUBLIC, f"{rule.rule} is neither public nor admin-only"
        assert len(admin) >= 8
        for method, rule in admin:
            path = re.sub(r"<int:\w+>", "1", rule)
            r = await client.request(method, path, json={})
            assert r.status_code == 401, (method, path, r.status_code)
        csrf = await login(client)
        for method, rule in admin:
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                path = re.sub(r"<int:\w+>", "1", rule)
                r = await client.request(method, path, json={})
                assert r.status_code == 403, (method, path)
                r = await client.request(
                    method, path, json={}, headers={"X-CSRF-Token": csrf + "x"}
                )
                assert r.status_code == 403, (method, path)


async def test_without_a_password_the_admin_api_says_how_to_set_one(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        r = await client.get("/api/leads")
        assert r.status_code == 503 and "ADMIN_PASSWORD" in r.json()["error"]
        r = await client.post("/api/auth/login", json={"password": "x"})
        assert r.status_code == 503


async def test_wrong_passwords_throttle_one_client_not_the_others(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (_suite, client):
        codes = []
        for _ in range(20):
            r = await client.post(
                "/api/auth/login",
                json={"password": "adivina"},
                headers={"X-Forwarded-For": "203.0.113.66"},
            )
            codes.append(r.status_code)
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert r.headers["retry-after"].isdigit()
        # Even the right password waits from that address; another client logs in.
        r = await client.post(
            "/api/auth/login",
            json={"password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.66"},
        )
        assert r.status_code == 429
        assert await login(client, "198.51.100.2")


async def test_the_cookie_is_strict_and_logout_ends_the_session(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (_suite, client):
        r = await client.post(
            "/api/auth/login",
            json={"password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.3", "X-Forwarded-Proto": "https"},
        )
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-ia_admin=")
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        assert len(token) >= 32  # 256 random bits, URL-safe
        client.cookies.clear()
        plain = await client.post("/api/auth/login", json={"password": PASSWORD})
        assert "Secure" not in plain.headers["set-cookie"]
        csrf = plain.json()["csrfToken"]
        assert (await client.get("/api/leads")).status_code == 200
        stolen = dict(client.cookies)
        out = await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200
        client.cookies.update(stolen)  # the old cookie, replayed: the server forgot it
        assert (await client.get("/api/leads")).status_code == 401


async def test_a_salespersons_day_and_the_csv_export(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (_suite, client):
        for session, text in (
            ("a", "Hola, soy José Ñuñez, 987654321, quiero agendar una instalación"),
            ("b", "Me llamo Ana, ¿cuánto cuesta la mantención?"),
            ("c", "hola"),
        ):
            r = await client.post("/api/chat", json={"message": text, "sessionId": session})
            assert r.status_code == 200
        csrf = await login(client)
        hot = (await client.get("/api/leads", params={"estado": "caliente"})).json()
        assert hot["total"] == 1
        lead = hot["data"][0]
        assert lead["name"] == "José Ñuñez" and "pidió agendar" in lead["reasons"]
        found = (await client.get("/api/leads", params={"q": "ñuñez"})).json()
        assert [x["id"] for x in found["data"]] == [lead["id"]] and found["totalExacto"]
        said = (await client.get("/api/leads", params={"q": "MANTENCION"})).json()  # written
        assert [x["name"] for x in said["data"]] == ["Ana"]
        short = await client.get("/api/leads", params={"q": "ñu"})
        assert short.status_code == 400 and "al menos 3 caracteres" in short.json()["error"]
        short_csv = await client.get("/api/leads/export.csv", params={"q": "ñu"})
        assert short_csv.status_code == 400
        assert (await client.get("/api/leads", params={"estado": "tibio!"})).status_code == 400
        page = (await client.get("/api/leads", params={"porPagina": "2"})).json()
        assert page["total"] == 3 and len(page["data"]) == 2
        detail = (await client.get(f"/api/leads/{lead['id']}")).json()["data"]
        assert [m["role"] for m in detail["mensajes"]] == ["user", "assistant"]
        assert detail["historialClases"][0]["estado"] == "caliente"
        notes = '=HYPERLINK("http://evil","x"), "comillas", coma\ny salto'
        r = await client.patch(
            f"/api/leads/{lead['id']}",
            json={"seguimiento": "contacted", "notas": notes},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200 and r.json()["data"]["contacted"] is True
        bad = await client.patch(
            f"/api/leads/{lead['id']}", json={"seguimiento": "x"}, headers={"X-CSRF-Token": csrf}
        )
        assert bad.status_code == 400
        stats = (await client.get("/api/leads/estadisticas")).json()["data"]
        assert stats["total"] == 3 and stats["porClase"]["caliente"] == 1
        assert stats["embudo"]["web"] == {"new": 3, "contacted": 1, "won": 0}
        assert stats["medianaPrimeraRespuestaSegundos"] is not None

        export = await client.get("/api/leads/export.csv")
        assert export.headers["content-type"].startswith("text/csv")
        raw = export.content
        assert raw.startswith("\ufeff".encode())
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        assert len(rows) == 3
        row = next(r for r in rows if r["id"] == str(lead["id"]))
        assert row["nombre"] == "José Ñuñez"
        assert row["notas"] == "'" + notes  # intact, and never a formula
        assert row["estado"] == "caliente" and row["contactado"] == "sí"

        gone = await client.delete(f"/api/leads/{lead['id']}", headers={"X-CSRF-Token": csrf})
        assert gone.status_code == 200
        assert (await client.get(f"/api/leads/{lead['id']}")).status_code == 404
        assert (await client.get("/api/chat/session/a")).status_code == 404


async def test_pages_and_api_carry_a_strict_content_security_policy(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        for path in ("/", "/api/business", "/health"):
            headers = (await client.get(path)).headers
            policy = headers["content-security-policy"]
            for part in ("script-src 'self'", "object-src 'none'", "base-uri 'none'"):
                assert part in policy
            # The chat page alone may be framed: by itself and ALLOWED_ORIGINS (test_widget.py).
            framed = "'self'" if path == "/" else "'none'"
            assert policy.endswith(f"frame-ancestors {framed}") and "unsafe-inline" not in policy
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"


def hash_with_the_cli(password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_an_argon2_hash_from_the_cli_logs_in(tmp_path: Path) -> None:
    made = await trio.to_thread.run_sync(hash_with_the_cli, "una-clave-larga-KNOWN")
    assert made.returncode == 0 and made.stdout.startswith("$argon2id$")
    settings = make_settings(tmp_path, ADMIN_PASSWORD_HASH=made.stdout.strip())
    async with running_suite(settings) as (_suite, client):
        wrong = await client.post("/api/auth/login", json={"password": "otra"})
        assert wrong.status_code == 401
        right = await client.post("/api/auth/login", json={"password": "una-clave-larga-KNOWN"})
        assert right.status_code == 200
        assert (await client.get("/api/leads")).status_code == 200

"""The owner is told what is wrong: a hot lead nobody can be alerted about makes
/health/detailed `degraded` with a reason in Spanish (the dashboard's banner), and the logs
carry one line per business event, without personal data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart import Response
from quart_trio import QuartTrio

from tests.conftest import make_settings, running_suite, wait_for
from tests.fakes import serve_on_loopback

PASSWORD = "dueno-KNOWN-clave-1"
HOT = "Soy Ana Rojas, mi fono es 9 8765 4321, quiero agendar una instalación para hoy"
CLIENT = "198.51.100.7"


async def chat(client: httpx.AsyncClient, text: str, session: str = "s1") -> dict[str, Any]:
    r = await client.post("/api/chat", json={"message": text, "sessionId": session})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    report: dict[str, Any] = (await client.get("/health/detailed")).json()
    return report


def business_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "business"]


async def test_a_hot_lead_without_any_alert_channel_degrades_health(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="business")
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        assert (await health(client))["status"] == "ok"
        assert (await chat(client, HOT))["lead"]["estado"] == "caliente"
        report = await health(client)
        assert report["status"] == "degraded"
        assert (
            "1 lead caliente sin aviso: no hay correo ni webhook configurado"
            " (SMTP_HOST/OWNER_EMAIL o WEBHOOK_URL)" in report["reasons"]
        )
        await chat(client, "Me llamo Pía Soto, mi fono es 9 1234 5678", "s2")
        await chat(client, "Quiero cotizar una reparación urgente, Luis, 923456789", "s3")
        reasons = (await health(client))["reasons"]
        assert any(r.startswith("2 leads calientes y 1 tibio sin aviso: ") for r in reasons)
    lines = business_lines(caplog)
    assert "lead 1 became caliente (web)" in lines
    assert "lead 2 became tibio (web)" in lines
    for personal in ("Ana", "Rojas", "8765", "Pía", "instalación"):
        assert not any(personal in line for line in lines)


async def test_an_alert_channel_that_fails_is_told_with_its_error(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="business")
    app = QuartTrio("hook")

    @app.post("/hooks/lead")
    async def hook() -> Response:
        return Response("down", status=503)

    url = await serve_on_loopback(nursery, app)
    settings = make_settings(tmp_path, WEBHOOK_URL=f"{url}/hooks/lead")
    async with running_suite(settings) as (_suite, client):
        await chat(client, HOT)
        await wait_for(lambda: any("alert for lead 1 failed" in x for x in business_lines(caplog)))
        reasons = (await health(client))["reasons"]
        assert (
            "1 lead caliente sin aviso: los avisos al dueño fallan (webhook: HTTP 503)" in reasons
        )
    assert "alert for lead 1 failed by webhook: webhook: HTTP 503 (will retry)" in (
        business_lines(caplog)
    )


async def test_logins_hand_offs_and_human_replies_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="business")
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXIES="127.0.0.1")
    forwarded = {"X-Forwarded-For": CLIENT}
    async with running_suite(settings) as (_suite, client):
        wrong = await client.post(
            "/api/auth/login", json={"password": "otra-KNOWN"}, headers=forwarded
        )
        assert wrong.status_code == 401
        right = await client.post("/api/auth/login", json={"password": PASSWORD}, headers=forwarded)
        headers = {"X-CSRF-Token": right.json()["csrfToken"]}
        await chat(client, "Hola")
        for step in ("pause", "resume"):
            r = await client.post(f"/api/conversations/1/{step}", headers=headers)
            assert r.status_code == 200
        r = await client.post(
            "/api/conversations/1/reply", json={"texto": "Hola, soy Marta"}, headers=headers
        )
        assert r.status_code == 200
    lines = business_lines(caplog)
    assert f"login failed from {CLIENT}" in lines and f"login ok from {CLIENT}" in lines
    assert "conversation 1 taken over by a person" in lines
    assert "conversation 1 returned to the bot" in lines
    assert "human reply in conversation 1 (web)" in lines
    everything = caplog.text
    assert PASSWORD not in everything and "otra-KNOWN" not in everything
    assert "Marta" not in " ".join(lines)

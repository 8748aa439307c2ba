"""The owner hears about a lead: e-mail through a real SMTP server on 127.0.0.1 (aiosmtpd)
and a JSON webhook, once per transition, retried until delivered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from tests.conftest import KNOWN_SECRET, make_settings, running_suite, wait_for
from tests.fakes import serve_on_loopback
from tests.fakes.smtp_server import FakeSMTP


async def chat(client: httpx.AsyncClient, text: str, session: str = "s1") -> dict[str, Any]:
    r = await client.post("/api/chat", json={"message": text, "sessionId": session})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def body(message: Any, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no {subtype} part"
    return str(part.get_content())


async def test_one_alert_per_transition_with_the_leads_data(tmp_path: Path) -> None:
    smtp = FakeSMTP().start()
    try:
        async with running_suite(make_settings(tmp_path, **smtp.env())) as (suite, client):
            first = await chat(client, "Hola")
            assert first["lead"]["estado"] == "frio" and first["lead"]["prioridad"] == "baja"
            warm = await chat(client, "Me llamo Ana Rojas, mi fono es 9 8765 4321")
            assert (warm["lead"]["estado"], warm["lead"]["prioridad"]) == ("tibio", "media")
            await wait_for(lambda: len(smtp.messages) == 1)
            hot = await chat(client, "Quiero agendar una instalación para hoy en Ñuñoa")
            # The web response carries this turn's classification, not the one before.
            assert (hot["lead"]["estado"], hot["lead"]["prioridad"]) == ("caliente", "alta")
            assert hot["lead"]["servicio"] == "Instalación de aire acondicionado"
            session = (await client.get("/api/chat/session/s1")).json()["data"]
            assert session["lead"]["estado"] == "caliente"
            await wait_for(lambda: len(smtp.messages) == 2)
            await chat(client, "es urgente, por favor")  # still hot: no new alert
            await trio.sleep(1.5)
            assert len(smtp.messages) == 2
            assert suite.db is not None
            rows = suite.db.all("SELECT event, status FROM owner_notifications ORDER BY id")
            assert rows == [
                {"event": "alert_tibio", "status": "sent"},
                {"event": "alert_caliente", "status": "sent"},
            ]
    finally:
        smtp.stop()
    warm_mail, hot_mail = smtp.messages
    assert warm_mail["Subject"] == "Nuevo lead Cordillera - Lead TIBIO: Ana Rojas"
    assert warm_mail["To"] == "dueno@cordilleraclima.cl"
    assert warm_mail["From"] == "alertas@cordilleraclima.cl"
    assert warm_mail["X-Priority"] is None
    assert hot_mail["X-Priority"].startswith("1")
    assert "🔥" in hot_mail["Subject"] and "CALIENTE" in hot_mail["Subject"]
    text, html = body(hot_mail, "plain"), body(hot_mail, "html")
    for needed in ("Ana Rojas", "+56987654321", "Ñuñoa", "pidió agendar", "urgencia: hoy"):
        assert needed in text and needed in html
    assert "https://wa.me/56987654321" in text and 'href="https://wa.me/56987654321"' in html
    assert "Cliente: Quiero agendar una instalación para hoy en Ñuñoa" in text


async def test_smtp_down_then_refusing_then_up_delivers_once(tmp_path: Path) -> None:
    smtp = FakeSMTP(refuse=1)  # not listening yet; then one 451; then fine
    settings = make_settings(tmp_path, **smtp.env())
    async with running_suite(settings) as (suite, client):
        await chat(client, "Soy Luis, 987654321, necesito cotizar una mantención")
        assert suite.db is not None
        db = suite.db
        await wait_for(
            lambda: db.scalar("SELECT attempts FROM owner_notifications") == 1, seconds=10
        )
        error = str(db.scalar("SELECT error FROM owner_notifications"))
        assert error.startswith("SMTP no disponible")
        smtp.start()
        try:
            await wait_for(lambda: len(smtp.messages) == 1, seconds=30)
            await trio.sleep(1)
        finally:
            smtp.stop()
        row = db.one("SELECT status, attempts FROM owner_notifications")
        assert row == {"status": "sent", "attempts": 3}
        work = (await client.get("/health/detailed")).json()["work"]["notifier"]
        assert (work["owner_sent"], work["owner_retried"]) == (1, 2)
    assert len(smtp.messages) == 1


async def test_a_wrong_smtp_password_fails_visibly_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    smtp = FakeSMTP(user="alertas@cordilleraclima.cl", password="the-right-one").start()
    env = smtp.env() | {"SMTP_USER": "alertas@cordilleraclima.cl", "SMTP_PASSWORD": KNOWN_SECRET}
    try:
        async with running_suite(make_settings(tmp_path, **env)) as (suite, client):
            await chat(client, "Soy Luis, 987654321, quiero agendar")
            assert suite.db is not None
            db = suite.db
            await wait_for(lambda: db.scalar("SELECT status FROM owner_notifications") == "failed")
            error = str(db.scalar("SELECT error FROM owner_notifications"))
            assert "SMTP_PASSWORD" in error and KNOWN_SECRET not in error
            assert db.scalar("SELECT attempts FROM owner_notifications") == 1
            health = (await client.get("/health/detailed")).text
            assert KNOWN_SECRET not in health
    finally:
        smtp.stop()
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN) once; no retry after.
    assert set(smtp.logins) == {"alertas@cordilleraclima.cl"} and len(smtp.logins) <= 2
    assert smtp.messages == []
    assert "failed for good" in caplog.text and KNOWN_SECRET not in caplog.text


async def test_the_same_event_goes_to_a_webhook_retried_until_accepted(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    received: list[dict[str, Any]] = []
    answers = [500]

    app = QuartTrio("hook")

    @app.post("/hooks/lead")
    async def hook() -> Response:
        received.append(json.loads(await request.get_data()))
        status = answers.pop(0) if answers else 200
        return Response("ok", status=status)

    url = await serve_on_loopback(nursery, app)
    settings = make_settings(tmp_path, WEBHOOK_URL=f"{url}/hooks/lead")
    async with running_suite(settings) as (suite, client):
        await chat(client, "Me llamo Pía, 987654321, necesito cotizar una bomba de calor")
        assert suite.db is not None
        db = suite.db
        await wait_for(
            lambda: db.scalar("SELECT status FROM owner_notifications") == "sent", seconds=20
        )
    assert len(received) == 2  # one 500, then accepted
    event = received[-1]
    assert (event["event"], event["type"]) == ("new_lead", "hot")
    assert event["lead"]["nombre"] == "Pía" and event["lead"]["telefono"] == "+56987654321"
    assert event["lead"]["servicio"] == "Bomba de calor y calefacción"
    assert "pidió cotización" in event["lead"]["razones"]

"""The demo is a sandbox: /demo and /api/simulate/* need the owner's login (or DEMO_MODE=1),
what they write never reaches the real leads (list, one lead, statistics, CSV, metrics,
alerts), the public chat can neither enter nor read it, and the owner empties it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sales.errors import ConfigProblem
from store import sandbox
from store.db import Database, utc_now
from tests.conftest import make_settings, running_suite, wait_for
from tests.ingress.test_admin import PASSWORD, admin_settings, login

# The demo page's "urgente" script (public/assets/demo.js), fake phone included.
URGENT = (
    "Hola, mi aire acondicionado no funciona y hace mucho calor",
    "Me llamo Daniela Soto",
    "+56 9 0000 0001",
    "Estoy en Providencia, ¿pueden venir hoy?",
)
DEMO_PHONE = "+56900000001"
# A real customer who happens to have the number a demo script types.
REAL = "Hola, soy Marta Ruiz, mi teléfono es +56 9 0000 0001, quiero agendar una instalación"
# Alerts go somewhere (a closed port: they stay queued), so that "no alert" means something.
ALERTS = {"WEBHOOK_URL": "http://127.0.0.1:9/alerta", "DEBOUNCE_SECONDS": "0"}


async def play_demo(client: httpx.AsyncClient, session: str, csrf: str | None) -> dict[str, Any]:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    data: dict[str, Any] = {}
    for text in URGENT:
        r = await client.post(
            "/api/simulate/chat", json={"message": text, "sessionId": session}, headers=headers
        )
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["sessionId"] == session  # the client's id, not the sandbox key
    return data


async def settled(db: Database) -> None:
    """Every reply answered and classified (simulated WhatsApp is answered in the background)."""
    await wait_for(
        lambda: (
            db.scalar("SELECT count(*) FROM messages WHERE role = 'user' AND status = 'pending'")
            == 0
            and db.scalar(
                "SELECT count(*) FROM messages WHERE role = 'assistant' AND classified_at IS NULL"
            )
            == 0
        )
    )


def metric_total(text: str, family: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(family + "{") or line.startswith(family + " ")
    )


async def test_without_a_login_the_demo_and_the_simulation_are_refused(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        page = await client.get("/demo")
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert 'href="/dashboard"' in page.text and "Inicia sesión" in page.text
        assert "<script" not in page.text and "style=" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        chat = {"message": "hola", "sessionId": "demo_1"}
        for method, path, body in (
            ("POST", "/api/simulate/chat", chat),
            ("POST", "/api/simulate/whatsapp", {"de": "ana", "mensaje": "hola"}),
            ("POST", "/api/simulate/web", {"de": "ana", "mensaje": "hola"}),
            ("GET", "/api/simulate/sandbox", None),
            ("DELETE", "/api/simulate/sandbox", None),
        ):
            r = await client.request(method, path, json=body)
            assert r.status_code == 401, (method, path)
            assert r.json()["success"] is False and "Inicia sesión" in r.json()["error"]
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM messages") == 0

        csrf = await login(client)
        page = await client.get("/demo")
        assert page.status_code == 200 and 'id="demo-chat"' in page.text
        r = await client.post("/api/simulate/chat", json=chat)  # no CSRF token
        assert r.status_code == 403
        r = await client.post("/api/simulate/chat", json=chat, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200


async def test_without_a_password_nor_demo_mode_nobody_enters(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        page = await client.get("/demo")
        assert page.status_code == 401 and 'href="/dashboard"' in page.text
        r = await client.post("/api/simulate/chat", json={"message": "hola"})
        assert r.status_code == 401 and r.json()["success"] is False


def test_demo_mode_is_off_unless_set(tmp_path: Path) -> None:
    assert make_settings(tmp_path).demo_mode is False
    assert make_settings(tmp_path, DEMO_MODE="1").demo_mode is True
    assert make_settings(tmp_path, DEMO_MODE="false").demo_mode is False
    with pytest.raises(ConfigProblem, match="DEMO_MODE"):
        make_settings(tmp_path, DEMO_MODE="quizás")


async def test_demo_mode_opens_the_demo_but_each_visitor_sees_only_their_own(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, DEMO_MODE="1", ADMIN_PASSWORD=PASSWORD, **ALERTS)
    async with running_suite(settings) as (suite, client):
        assert suite.db is not None
        page = await client.get("/demo")
        assert page.status_code == 200 and 'id="demo-chat"' in page.text
        data = await play_demo(client, "demo_urgente_visitor1", None)
        assert data["lead"]["telefono"] == DEMO_PHONE
        assert data["lead"]["estado"] == "caliente"
        for who in ("visita1", "visita2"):
            r = await client.post(
                "/api/simulate/whatsapp", json={"de": who, "mensaje": f"Hola, soy {who}"}
            )
            assert r.status_code == 202, r.text
        await settled(suite.db)
        everything = await client.get("/api/simulate/sandbox")
        assert everything.status_code == 400  # a visitor must say whose chat
        mine = (await client.get("/api/simulate/sandbox", params={"de": "visita1"})).json()
        texts = [m["content"] for m in mine["data"]["mensajes"]]
        assert texts[0] == "Hola, soy visita1" and len(texts) == 2
        # Their reply, kept in the sandbox (never sent to Meta), and nobody else's.
        assert [s["recipient"] for s in mine["data"]["envios"]] == ["sim:visita1"]
        bad = await client.get("/api/simulate/sandbox", params={"de": "../x"})
        assert bad.status_code == 400
        # Emptying the sandbox stays the owner's.
        assert (await client.delete("/api/simulate/sandbox")).status_code == 401
        # Nothing of it is a real lead, nor queued an alert.
        assert suite.db.scalar("SELECT count(*) FROM leads WHERE sandbox = 0") == 0
        assert suite.db.scalar("SELECT count(*) FROM owner_notifications") == 0
        csrf = await login(client)
        assert (await client.get("/api/leads")).json()["total"] == 0
        whole = (await client.get("/api/simulate/sandbox")).json()["data"]
        simulated = suite.db.all("SELECT id FROM conversations WHERE external_key LIKE 'sim:%'")
        assert {m["conversation_id"] for m in whole["mensajes"]} == {r["id"] for r in simulated}
        assert len(simulated) == 3
        r = await client.delete("/api/simulate/sandbox", headers={"X-CSRF-Token": csrf})
        assert r.json() == {"success": True, "eliminadas": 3}


async def test_a_simulated_person_sees_their_own_lead_card_on_any_channel(
    tmp_path: Path,
) -> None:
    async with running_suite(make_settings(tmp_path, DEMO_MODE="1")) as (suite, client):
        assert suite.db is not None
        for channel, who, text in (
            ("instagram", "rocio", "Soy Rocío, quiero una mantención en Ñuñoa"),
            ("whatsapp", "pablo", "Hola, soy Pablo"),
        ):
            r = await client.post(f"/api/simulate/{channel}", json={"de": who, "mensaje": text})
            assert r.status_code == 202, r.text
        await settled(suite.db)
        view = (await client.get("/api/simulate/sandbox", params={"de": "rocio"})).json()
        lead = view["data"]["lead"]
        assert lead["nombre"] == "Rocío" and lead["canal"] == "instagram"
        assert lead["comuna"] == "Ñuñoa"
        # a second simulated person sees only theirs
        other = (await client.get("/api/simulate/sandbox", params={"de": "pablo"})).json()
        assert other["data"]["lead"]["nombre"] == "Pablo"
        assert "Ñuñoa" not in json.dumps(other["data"], ensure_ascii=False)
        nobody = (await client.get("/api/simulate/sandbox", params={"de": "nadie"})).json()
        assert nobody["data"]["lead"] is None


async def test_the_public_chat_can_neither_enter_nor_reset_the_sandbox(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        for session in ("sim:demo_urgente_1", "SIM:x", "Sim:ana"):
            r = await client.post("/api/chat", json={"message": "hola", "sessionId": session})
            assert r.status_code == 400, session
            body = r.json()
            assert body["success"] is False and body["details"][0]["campo"] == "sessionId"
            assert "sim:" in body["details"][0]["mensaje"]
            r = await client.post("/api/chat/reset", json={"sessionId": session})
            assert r.status_code == 400
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM conversations") == 0
        ok = await client.post("/api/chat", json={"message": "hola", "sessionId": "simon"})
        assert ok.status_code == 200


async def test_a_demo_never_touches_real_leads_nor_their_figures(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path, **ALERTS)) as (suite, client):
        assert suite.db is not None
        db = suite.db
        r = await client.post("/api/chat", json={"message": REAL, "sessionId": "cliente-1"})
        assert r.status_code == 200 and r.json()["data"]["lead"]["telefono"] == DEMO_PHONE
        csrf = await login(client)
        real = (await client.get("/api/leads")).json()["data"]
        assert len(real) == 1 and real[0]["name"] == "Marta Ruiz"
        before = (await client.get(f"/api/leads/{real[0]['id']}")).json()["data"]
        alerts_before = db.scalar("SELECT count(*) FROM owner_notifications")
        assert alerts_before >= 1  # a real hot lead is announced

        await play_demo(client, "demo_urgente_abc", csrf)
        headers = {"X-CSRF-Token": csrf}
        for channel in ("whatsapp", "instagram", "web"):
            r = await client.post(
                f"/api/simulate/{channel}",
                json={"de": "ana", "mensaje": "Soy Marta Ruiz, +56 9 0000 0001, quiero agendar"},
                headers=headers,
            )
            assert r.status_code == 202, r.text
        await settled(db)

        # The real lead is exactly as it was: nothing merged into it, renamed or rescored.
        after = (await client.get(f"/api/leads/{real[0]['id']}")).json()["data"]
        assert after == before
        listed = (await client.get("/api/leads")).json()
        assert listed["total"] == 1 and listed["data"][0]["id"] == real[0]["id"]
        for query in ({"q": "0000"}, {"q": "Daniela"}, {"canal": "whatsapp"}):
            found = (await client.get("/api/leads", params=query)).json()
            assert found["total"] == (1 if query == {"q": "0000"} else 0), query
        stats = (await client.get("/api/leads/estadisticas")).json()["data"]
        assert stats["total"] == 1 and set(stats["canalPorClase"]) == {"web"}
        assert stats["embudo"] == {"web": {"new": 1, "contacted": 0, "won": 0}}
        assert sum(d["leads"] for d in stats["porDia"]) == 1
        export = await client.get("/api/leads/export.csv")
        rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
        assert [r["id"] for r in rows] == [str(real[0]["id"])]
        metrics = (await client.get("/metrics")).text
        assert metric_total(metrics, "ia_leads") == 1
        whatsapp = [
            line
            for line in metrics.splitlines()
            if line.startswith(("ia_leads{", "ia_leads_created_total{"))
            and 'channel="whatsapp"' in line
        ]
        assert whatsapp and all(line.endswith(" 0.0") for line in whatsapp)
        assert metric_total(metrics, "ia_messages_total") == 2  # the real visitor's turn

        # The sandbox has the demo's leads, but the admin API does not show or change them.
        hidden = [r["id"] for r in db.all("SELECT id FROM leads WHERE sandbox = 1")]
        assert len(hidden) == 4  # the demo's visitor, and "ana" on each channel
        assert db.scalar("SELECT count(*) FROM owner_notifications") == alerts_before
        for lead_id in hidden:
            assert (await client.get(f"/api/leads/{lead_id}")).status_code == 404
            patch = await client.patch(
                f"/api/leads/{lead_id}", json={"notas": "x"}, headers=headers
            )
            assert patch.status_code == 404
            assert (await client.get(f"/api/followups/{lead_id}")).status_code == 404
            sent = await client.post(f"/api/followups/{lead_id}/send", headers=headers)
            assert sent.status_code == 404
            gone = await client.delete(f"/api/leads/{lead_id}", headers=headers)
            assert gone.status_code == 404
        assert db.scalar("SELECT count(*) FROM leads WHERE sandbox = 1") == len(hidden)


async def test_clearing_the_sandbox_removes_it_and_leaves_the_real_leads(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path, **ALERTS)) as (suite, client):
        assert suite.db is not None
        db = suite.db
        r = await client.post("/api/chat", json={"message": REAL, "sessionId": "cliente-1"})
        assert r.status_code == 200
        csrf = await login(client)
        headers = {"X-CSRF-Token": csrf}
        await play_demo(client, "demo_urgente_1", csrf)
        r = await client.post(
            "/api/simulate/whatsapp", json={"de": "ana", "mensaje": "hola"}, headers=headers
        )
        assert r.status_code == 202
        await settled(db)
        await wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") > 0)
        real = (await client.get("/api/leads")).json()["data"][0]
        before = (await client.get(f"/api/leads/{real['id']}")).json()["data"]

        assert (await client.delete("/api/simulate/sandbox")).status_code == 403  # CSRF
        r = await client.delete("/api/simulate/sandbox", headers=headers)
        assert r.status_code == 200 and r.json() == {"success": True, "eliminadas": 2}

        assert db.scalar("SELECT count(*) FROM conversations WHERE external_key LIKE 'sim:%'") == 0
        assert db.scalar("SELECT count(*) FROM leads WHERE sandbox = 1") == 0
        assert db.scalar("SELECT count(*) FROM outbox") == 0
        for table in ("lead_classifications", "lead_identities", "lead_claims", "follow_ups"):
            orphans = db.scalar(
                f"SELECT count(*) FROM {table} WHERE lead_id NOT IN (SELECT id FROM leads)"
            )
            assert orphans == 0, table
        assert (
            db.scalar(
                "SELECT count(*) FROM messages WHERE conversation_id NOT IN"
                " (SELECT id FROM conversations)"
            )
            == 0
        )
        box = (await client.get("/api/simulate/sandbox")).json()["data"]
        assert box == {"envios": [], "mensajes": []}
        assert (await client.get(f"/api/leads/{real['id']}")).json()["data"] == before
        assert (await client.get("/api/leads")).json()["total"] == 1
        again = await client.delete("/api/simulate/sandbox", headers=headers)
        assert again.json()["eliminadas"] == 0


def test_clearing_never_deletes_a_customer_linked_to_the_sandbox_before_it_existed(
    db: Database,
) -> None:
    """A lead the V10 migration flagged because a demo conversation had been merged into it
    keeps its real conversation, and so survives; a pure demo lead goes (on both backends)."""
    now = utc_now()

    def lead(name: str) -> int:
        return db.insert(
            "INSERT INTO leads (channel, name, created_at, updated_at, last_interaction_at,"
            " sandbox) VALUES ('web', ?, ?, ?, ?, 1)",
            (name, now, now, now),
        )

    def conversation(key: str, lead_id: int | None) -> int:
        conversation_id = db.insert(
            "INSERT INTO conversations (channel, external_key, lead_id, created_at,"
            " updated_at) VALUES ('web', ?, ?, ?, ?)",
            (key, lead_id, now, now),
        )
        db.execute(
            "INSERT INTO messages (conversation_id, channel, role, content, created_at)"
            " VALUES (?, 'web', 'user', 'hola', ?)",
            (conversation_id, now),
        )
        return conversation_id

    customer, demo = lead("Marta"), lead("Daniela")
    kept = conversation("session_real", customer)
    conversation("sim:demo_1", customer)
    conversation("sim:demo_2", demo)
    conversation("SIM:not-the-sandbox", None)  # a public session id from before the rule
    assert sandbox.clear(db) == 2
    assert [r["id"] for r in db.all("SELECT id FROM leads")] == [customer]
    keys = {r["external_key"] for r in db.all("SELECT external_key FROM conversations")}
    assert keys == {"session_real", "SIM:not-the-sandbox"}
    assert db.scalar("SELECT count(*) FROM messages WHERE conversation_id = ?", (kept,)) == 1

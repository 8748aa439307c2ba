"""Hand-off on WhatsApp: paused, a person's messages are stored and shown, not answered by
the bot; the human's reply goes out through the same outbox; resumed, the bot answers."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.conftest import make_settings, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.meta import channel_env, post_signed, whatsapp_text

PASSWORD = "handoff-KNOWN-clave-1"
USER = "56987654321"


async def test_pause_reply_by_hand_and_resume_on_whatsapp(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url), ADMIN_PASSWORD=PASSWORD)
    async with running_suite(settings) as (suite, client):
        hello = whatsapp_text(USER, "wamid.h1", "Hola, soy Marta y quiero agendar")
        assert (await post_signed(client, "whatsapp", hello)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 1)  # the bot's reply
        csrf = (await client.post("/api/auth/login", json={"password": PASSWORD})).json()[
            "csrfToken"
        ]
        headers = {"X-CSRF-Token": csrf}
        lead = (await client.get("/api/leads")).json()["data"][0]
        detail = (await client.get(f"/api/leads/{lead['id']}")).json()["data"]
        conversation = detail["conversaciones"][0]["id"]
        r = await client.post(f"/api/conversations/{conversation}/pause", headers=headers)
        assert r.json() == {"success": True, "pausada": True}

        waiting = whatsapp_text(USER, "wamid.h2", "¿Hay alguien?", ts=1764230100)
        assert (await post_signed(client, "whatsapp", waiting)).status_code == 200
        assert suite.db is not None
        db = suite.db
        await wait_for(
            lambda: (
                db.scalar("SELECT status FROM messages WHERE external_id = 'wamid.h2'") == "handled"
            )
        )
        # The bot stayed quiet: no reply recorded, and nothing more sent.
        assert db.scalar("SELECT count(*) FROM messages WHERE role = 'assistant'") == 1
        await trio.sleep(0.5)
        assert len(fake_graph.texts()) == 1
        shown = (await client.get(f"/api/leads/{lead['id']}")).json()["data"]["mensajes"]
        assert shown[-1]["content"] == "¿Hay alguien?"

        manual = "Hola Marta, soy Carla. Te llamo ahora."
        r = await client.post(
            f"/api/conversations/{conversation}/reply", json={"texto": manual}, headers=headers
        )
        assert r.status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 2)
        assert fake_graph.texts()[1] == (USER, manual)
        bad = await client.post(
            f"/api/conversations/{conversation}/reply", json={"texto": " "}, headers=headers
        )
        assert bad.status_code == 400

        await client.post(f"/api/conversations/{conversation}/resume", headers=headers)
        again = whatsapp_text(USER, "wamid.h3", "gracias, ¿y el precio?", ts=1764230200)
        assert (await post_signed(client, "whatsapp", again)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 3)  # the bot is back


async def test_a_follow_up_sent_now_from_the_dashboard(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url), ADMIN_PASSWORD=PASSWORD)
    async with running_suite(settings) as (suite, client):
        hello = whatsapp_text(USER, "wamid.f1", "Hola, soy Marta, me interesa la mantención")
        assert (await post_signed(client, "whatsapp", hello)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 1)
        login = await client.post("/api/auth/login", json={"password": PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrfToken"]}
        lead = (await client.get("/api/leads")).json()["data"][0]
        due = (await client.get("/api/followups")).json()["data"]
        assert due["pendientes"] == []  # she wrote a moment ago
        r = await client.post(f"/api/followups/{lead['id']}/send", headers=headers)
        assert r.status_code == 200 and r.json()["data"]["number"] == 1
        await wait_for(lambda: len(fake_graph.texts()) == 2)
        assert fake_graph.texts()[1][1].startswith("Hola Marta, te escribo de Cordillera Clima")
        history = (await client.get(f"/api/followups/{lead['id']}")).json()["data"]
        assert [h["number"] for h in history] == [1]

        stop = whatsapp_text(USER, "wamid.f2", "STOP", ts=1764230100)
        assert (await post_signed(client, "whatsapp", stop)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 3)  # the one confirmation
        assert suite.db is not None
        db = suite.db
        # The classifier records the opt-out just after the reply.
        await wait_for(
            lambda: db.scalar("SELECT opted_out_at FROM leads WHERE id = ?", (lead["id"],))
        )
        refused = await client.post(f"/api/followups/{lead['id']}/send", headers=headers)
        assert refused.status_code == 409 and "no recibir" in refused.json()["error"]


async def test_simulated_channels_go_through_the_pipeline_into_the_sandbox(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    # WhatsApp configured (tokens): still, a simulated person is never sent to Meta.
    settings = make_settings(tmp_path, **channel_env(fake_graph.url), ADMIN_PASSWORD=PASSWORD)
    async with running_suite(settings) as (suite, client):
        body = {"de": "ana", "mensaje": "Hola, soy Ana, 987654321, quiero agendar"}
        assert (await client.post("/api/simulate/whatsapp", json=body)).status_code == 401
        login = await client.post("/api/auth/login", json={"password": PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrfToken"]}
        for channel in ("whatsapp", "instagram", "web"):
            r = await client.post(f"/api/simulate/{channel}", json=body, headers=headers)
            assert r.status_code == 202, r.text
        bad = await client.post(
            "/api/simulate/whatsapp", json={"de": "<x>", "mensaje": "hola"}, headers=headers
        )
        assert bad.status_code == 400
        assert (
            await client.post("/api/simulate/fax", json=body, headers=headers)
        ).status_code == 404

        async def sandbox() -> dict[str, list[dict[str, object]]]:
            data: dict[str, list[dict[str, object]]] = (
                await client.get("/api/simulate/sandbox")
            ).json()["data"]
            return data

        with trio.fail_after(10):
            while len((await sandbox())["envios"]) < 2:
                await trio.sleep(0.05)
        box = await sandbox()
        assert {(s["channel"], s["status"]) for s in box["envios"]} == {
            ("whatsapp", "sent"),
            ("instagram", "sent"),
        }
        assert fake_graph.attempts == []  # nothing reached the Graph API
        assert sum(1 for m in box["mensajes"] if m["role"] == "assistant") == 3
        # Classified like any other lead, but in the sandbox: never among the real ones.
        assert (await client.get("/api/leads")).json()["total"] == 0
        assert suite.db is not None
        leads = suite.db.all("SELECT channel, classification, sandbox FROM leads ORDER BY channel")
        assert leads == [
            {"channel": channel, "classification": "caliente", "sandbox": 1}
            for channel in ("instagram", "web", "whatsapp")
        ]

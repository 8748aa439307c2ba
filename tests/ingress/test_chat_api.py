"""The web chat API through real HTTP, offline brain: shapes, validation, history, health."""

from __future__ import annotations

import json
from pathlib import Path

from store.migrations import MIGRATIONS
from tests.conftest import make_settings, running_suite


async def test_two_turns_collect_the_lead_and_keep_the_history(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        first = await client.post(
            "/api/chat", json={"message": "Hola, necesito una mantención", "sessionId": "s-1"}
        )
        assert first.status_code == 200
        body = first.json()
        assert body["success"] is True
        data = body["data"]
        assert set(data) == {
            "respuesta",
            "sessionId",
            "lead",
            "conversacionCompleta",
            "leadGuardado",
        }
        assert set(data["lead"]) == {
            "nombre",
            "telefono",
            "servicio",
            "comuna",
            "estado",
            "canal",
            "completo",
            "prioridad",
            "razones",
            "puntaje",
        }
        assert data["sessionId"] == "s-1"
        assert data["lead"]["servicio"] == "Mantención preventiva"
        assert data["lead"]["canal"] == "web"
        assert "¿Cómo te llamas?" in data["respuesta"]

        second = await client.post(
            "/api/chat", json={"message": "Me llamo Carla Soto", "sessionId": "s-1"}
        )
        lead = second.json()["data"]["lead"]
        assert lead["nombre"] == "Carla Soto"
        assert second.json()["data"]["leadGuardado"] is True
        assert "teléfono" in second.json()["data"]["respuesta"]

        history = (await client.get("/api/chat/session/s-1")).json()["data"]
        assert [m["role"] for m in history["historial"]] == ["user", "assistant"] * 2
        assert history["historial"][2]["content"] == "Me llamo Carla Soto"
        assert history["lead"]["nombre"] == "Carla Soto"


async def test_offline_brain_walks_the_fields_in_order(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):

        async def say(text: str) -> dict[str, object]:
            r = await client.post("/api/chat", json={"message": text, "sessionId": "walk"})
            assert r.status_code == 200
            data: dict[str, object] = r.json()["data"]
            return data

        assert "¿Cómo te llamas?" in str((await say("Hola"))["respuesta"])
        assert "teléfono" in str((await say("Pedro"))["respuesta"])
        assert "servicio" in str((await say("+56 9 8765 4321"))["respuesta"])
        assert "comuna" in str((await say("quiero instalar un aire"))["respuesta"])
        assert "cuándo" in str((await say("Ñuñoa"))["respuesta"])
        done = await say("es urgente, hoy si se puede")
        lead = done["lead"]
        assert isinstance(lead, dict)
        assert lead == {
            "nombre": "Pedro",
            "telefono": "+56987654321",
            "servicio": "Instalación de aire acondicionado",
            "comuna": "Ñuñoa",
            "estado": "caliente",
            "canal": "web",
            "completo": True,
            "prioridad": "alta",
            "razones": lead["razones"],
            "puntaje": lead["puntaje"],
        }
        assert any(r.startswith("urgencia: ") for r in lead["razones"]) and lead["puntaje"] > 50
        assert done["conversacionCompleta"] is True
        # The conversation goes on after the lead is complete: questions still get answers.
        assert "registré tu solicitud" in str(done["respuesta"])  # summed up once
        after = await say("¿qué medios de pago aceptan?")
        assert "Transferencia bancaria" in str(after["respuesta"])
        assert "registré" not in str(after["respuesta"])
        thanks = str((await say("gracias"))["respuesta"])
        assert thanks.startswith("Con gusto. Ya tenemos tu solicitud de Instalación")
        assert after["lead"] == lead  # the lead stays as it was


async def test_session_id_is_optional_and_issued_by_the_server(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        r = await client.post("/api/chat", json={"message": "hola"})
        assert r.status_code == 200
        issued = r.json()["data"]["sessionId"]
        assert issued.startswith("session_") and len(issued) > 20
        r2 = await client.get(f"/api/chat/session/{issued}")
        assert r2.json()["data"]["mensajes"] == 2


async def test_bad_requests_get_the_original_error_shape(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        r = await client.post("/api/chat", json={"sessionId": "x"})
        assert r.status_code == 400
        assert r.json() == {
            "success": False,
            "error": "Datos de entrada inválidos",
            "details": [{"campo": "message", "mensaje": "El mensaje no puede estar vacío"}],
        }
        for not_text in (123, ["hola"], {"texto": "hola"}, True):
            r = await client.post("/api/chat", json={"message": not_text, "sessionId": "x"})
            assert r.status_code == 400
            assert r.json()["details"] == [
                {"campo": "message", "mensaje": "El mensaje debe ser texto"}
            ]
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "../etc"})
        assert r.status_code == 400
        assert r.json()["details"][0]["campo"] == "sessionId"
        r = await client.post(
            "/api/chat", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["success"] is False
        r = await client.post("/api/chat", json=["a", "list"])
        assert r.status_code == 400
        r = await client.post(
            "/api/chat",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["success"] is False
        r = await client.post("/api/chat", json={"message": "x" * 4001, "sessionId": "big"})
        assert r.status_code == 413
        assert r.json()["details"][0]["campo"] == "message"
        r = await client.post(
            "/api/chat",
            content=b"x" * (1024 * 1024 + 10),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["success"] is False
        # Nothing was stored by any of them.
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM messages") == 0
        assert suite.db.scalar("SELECT count(*) FROM conversations") == 0


async def test_unknown_routes_and_methods_answer_json(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        r = await client.get("/api/nothing-here")
        assert r.status_code == 404 and r.json()["success"] is False
        r = await client.get("/api/chat")
        assert r.status_code == 405 and r.json()["success"] is False
        r = await client.get("/api/chat/session/unknown-session")
        assert r.status_code == 404


async def test_reset_starts_a_new_conversation(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        await client.post("/api/chat", json={"message": "Hola", "sessionId": "r-1"})
        r = await client.post("/api/chat/reset", json={"sessionId": "r-1"})
        assert r.status_code == 200 and r.json()["success"] is True
        assert (await client.get("/api/chat/session/r-1")).status_code == 404
        r = await client.post("/api/chat", json={"message": "Hola otra vez", "sessionId": "r-1"})
        history = (await client.get("/api/chat/session/r-1")).json()["data"]["historial"]
        assert next(m["content"] for m in history) == "Hola otra vez"
        r = await client.post("/api/chat/reset", json={})
        assert r.status_code == 400


async def test_streamed_reply_as_server_sent_events(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        async with client.stream(
            "POST",
            "/api/chat",
            json={"message": "¿Cuál es el horario?", "sessionId": "sse"},
            headers={"Accept": "text/event-stream"},
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _parse_sse("".join([chunk async for chunk in r.aiter_text()]))
        names = [e for e, _ in events]
        assert names[0] == "start" and names[-1] == "done"
        assert names.count("token") >= 2
        tokens = "".join(d["text"] for e, d in events if e == "token")
        final = events[-1][1]["data"]
        assert tokens == final["respuesta"]
        assert "lunes: 09:00 a 19:00" in tokens


async def test_health_endpoints(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).json() == {"status": "ready"}
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["status"] == "ok"
        assert {a["name"]: a["state"] for a in detailed["actors"]} == {
            "store": "running",
            "cluster": "running",
            "backup": "running",
            "notifier": "running",
            "classifier": "running",
            "conversation": "running",
            "ingress": "running",
        }
        assert detailed["store"]["schemaVersion"] == len(MIGRATIONS)
        assert detailed["store"]["sizeBytes"] > 0
        assert detailed["store"]["backend"] == "sqlite" and detailed["store"]["reachable"]
        assert detailed["store"]["location"] == str(suite.settings.database_path)
        assert detailed["process"]["rssBytes"] > 0
        assert detailed["brain"] == "offline"
        assert detailed["version"]


async def test_pages_are_served(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        page = await client.get("/")
        assert page.status_code == 200 and '<ol id="messages"' in page.text
        script = await client.get("/assets/chat.js")
        assert script.status_code == 200 and "textContent" in script.text
        branding = (await client.get("/api/business")).json()
        assert branding["primaryColor"] == "#0f766e"
        assert branding["name"] == "Climatización Cordillera"


def _parse_sse(text: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events = []
    for block in text.strip().split("\n\n"):
        name, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((name, json.loads(data)))
    return events

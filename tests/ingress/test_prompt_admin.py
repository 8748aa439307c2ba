"""The business's rules for the model, edited from the dashboard: in force at once, every
version kept, any restored, and back to the file."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import make_settings, running_suite
from tests.fakes.openai_server import FakeOpenAI

PASSWORD = "prompt-KNOWN-clave-1"


async def test_edit_restore_and_back_to_the_file(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        OPENAI_API_KEY="sk-test-prompt",
        OPENAI_BASE_URL=fake_llm.url,
    )

    async def system_prompt_of_next_turn(client: httpx.AsyncClient, session: str) -> str:
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": session})
        assert r.status_code == 200
        return str(fake_llm.requests[-1]["messages"][0]["content"])

    async with running_suite(settings) as (suite, client):
        login = await client.post("/api/auth/login", json={"password": PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrfToken"]}
        first = (await client.get("/api/prompt")).json()["data"]
        assert first["origen"] == "archivo" and "FORMATO DE SALIDA" in first["texto"]

        edited = "REGLA NUEVA: ofrece siempre la visita gratis.\n" + first["texto"]
        r = await client.put("/api/prompt", json={"texto": edited}, headers=headers)
        assert r.status_code == 200
        assert "REGLA NUEVA" in await system_prompt_of_next_turn(client, "a")
        assert (
            await client.put("/api/prompt", json={"texto": " "}, headers=headers)
        ).status_code == 400

        r = await client.post("/api/prompt/restore", json={}, headers=headers)
        assert r.status_code == 200
        assert "REGLA NUEVA" not in await system_prompt_of_next_turn(client, "b")
        again = await client.post("/api/prompt/restore", json={"version": 1}, headers=headers)
        assert again.status_code == 200
        assert "REGLA NUEVA" in await system_prompt_of_next_turn(client, "c")
        missing = await client.post("/api/prompt/restore", json={"version": 99}, headers=headers)
        assert missing.status_code == 404
        data = (await client.get("/api/prompt")).json()["data"]
        assert data["origen"] == "panel"
        assert [v["note"] for v in data["versiones"]] == [
            "restaurada la versión 1",
            "restaurado desde el archivo",
            "editado en el panel",
        ]
        conversation = next(a for a in suite.actors() if a.name == "conversation")
        assert conversation.restarts == 0  # each new text swapped in, no restart
        assert conversation.last_error is None


async def test_the_commercial_strategy_reaches_the_model(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        OPENAI_API_KEY="sk-test-strategy",
        OPENAI_BASE_URL=fake_llm.url,
    )
    async with running_suite(settings) as (_suite, client):
        login = await client.post("/api/auth/login", json={"password": PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrfToken"]}
        assert (await client.get("/api/strategy")).json()["data"]["estrategia"] is None
        bad = await client.put(
            "/api/strategy", json={"objetivoPrincipal": "", "insistencia": "total"}, headers=headers
        )
        assert bad.status_code == 400
        fields = {d["campo"] for d in bad.json()["details"]}
        assert fields == {"objetivoPrincipal", "insistencia"}
        strategy = {
            "objetivoPrincipal": "agendar visitas técnicas esta semana",
            "criteriosLeadCaliente": ["pide visita", "tiene más de 3 equipos"],
            "tono": "cercano",
            "insistencia": "alta",
        }
        assert (
            await client.put("/api/strategy", json=strategy, headers=headers)
        ).status_code == 200
        await client.post("/api/chat", json={"message": "hola", "sessionId": "s"})
        system = str(fake_llm.requests[-1]["messages"][0]["content"])
        assert "ESTRATEGIA COMERCIAL" in system
        assert "agendar visitas técnicas esta semana" in system and "Insistencia alta" in system
        assert (await client.get("/api/strategy")).json()["data"]["estrategia"] == strategy
        r = await client.post("/api/strategy/restore", json={}, headers=headers)
        assert r.status_code == 200
        await client.post("/api/chat", json={"message": "hola", "sessionId": "t"})
        assert "ESTRATEGIA COMERCIAL" not in str(fake_llm.requests[-1]["messages"][0]["content"])

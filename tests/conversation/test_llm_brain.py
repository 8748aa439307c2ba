"""The OpenAI-compatible brain against a fake server on 127.0.0.1, through the chat API."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from actors.conversation.replies import fallback_text
from tests.conftest import KNOWN_SECRET, make_settings, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, Stall, Status, lead_json


def llm_settings(tmp_path: Path, fake: FakeOpenAI, **env: str):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL=fake.url, **env)


async def test_plain_reply_uses_the_model_the_prompt_and_stores_usage(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [
        Answer(
            lead_json("¡Hola Ana! ¿Me das tu teléfono?", nombre="Ana", estado="tibio"),
            prompt_tokens=321,
            completion_tokens=45,
        )
    ]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        r = await client.post("/api/chat", json={"message": "Hola, soy Ana", "sessionId": "p"})
        assert r.status_code == 200
        data = r.json()["data"]
        assert data["respuesta"] == "¡Hola Ana! ¿Me das tu teléfono?"
        assert data["lead"]["nombre"] == "Ana"
        assert data["lead"]["estado"] == "tibio"
        sent = fake_llm.requests[0]
        assert sent["model"] == "gpt-4o-mini"
        assert not sent.get("stream")  # a plain JSON request does not stream from the model
        assert sent["response_format"] == {"type": "json_object"}
        assert sent["temperature"] == 0.7 and sent["max_tokens"] == 500
        system = sent["messages"][0]
        assert system["role"] == "system"
        assert "Climatización Cordillera" in system["content"]  # from business.json
        assert "FORMATO DE SALIDA" in system["content"]  # from prompts/systemPrompt.txt
        assert "chat del sitio web" in system["content"]  # the channel block
        assert sent["messages"][-1] == {"role": "user", "content": "Hola, soy Ana"}
        assert fake_llm.headers[0]["authorization"] == f"Bearer {KNOWN_SECRET}"
        assert suite.db is not None
        row = suite.db.one(
            "SELECT source, model, prompt_tokens, completion_tokens FROM messages"
            " WHERE role = 'assistant'"
        )
        assert row == {
            "source": "llm",
            "model": "gpt-4o-mini",
            "prompt_tokens": 321,
            "completion_tokens": 45,
        }
        # The second turn carries the history.
        await client.post("/api/chat", json={"message": "+56911112222", "sessionId": "p"})
        roles = [m["role"] for m in fake_llm.requests[1]["messages"]]
        assert roles == ["system", "user", "assistant", "user"]


async def test_streamed_reply_arrives_as_tokens(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    reply = 'Claro: la mantención cuesta $45.000 por equipo.\nDime tu "comuna" 😊'
    fake_llm.script = [Answer(lead_json(reply, servicio="Mantención preventiva"))]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (_suite, client):
        async with client.stream(
            "POST",
            "/api/chat",
            json={"message": "precio mantención", "sessionId": "st"},
            headers={"Accept": "text/event-stream"},
        ) as r:
            body = "".join([c async for c in r.aiter_text()])
    events = [b for b in body.split("\n\n") if b.strip()]
    tokens = [
        json.loads(e.split("data: ", 1)[1])["text"] for e in events if e.startswith("event: token")
    ]
    assert len(tokens) >= 5  # streamed in pieces, not one block
    assert "".join(tokens) == reply  # JSON escapes and emoji decoded on the fly
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert done["data"]["respuesta"] == reply
    assert fake_llm.requests[0]["stream"] is True


async def test_invalid_json_gets_one_repair_round(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    fake_llm.script = [
        Answer("Hola, claro que sí (sin JSON)"),
        Answer(lead_json("Hola, ¿en qué comuna estás?")),
    ]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (_suite, client):
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "rep"})
        assert r.json()["data"]["respuesta"] == "Hola, ¿en qué comuna estás?"
    assert len(fake_llm.requests) == 2
    repair = fake_llm.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Hola, claro que sí (sin JSON)"}
    assert "no es JSON válido" in repair[-1]["content"]


async def test_still_invalid_after_repair_gives_the_fallback(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [Answer('{"reply": ""}'), Answer('{"lead": {}}')]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "bad"})
        assert r.json()["data"]["respuesta"] == fallback_text(suite.business)


async def test_429_and_500_are_retried_then_succeed(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    fake_llm.script = [Status(429, "slow down"), Status(500), Answer(lead_json("¡Listo!"))]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (_suite, client):
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "retry"})
        assert r.json()["data"]["respuesta"] == "¡Listo!"
        llm = (await client.get("/health/detailed")).json()["work"]["llm"]
        assert (llm["calls"], llm["retries"], llm["errors"]) == (3, 2, 0)
    assert len(fake_llm.requests) == 3


async def test_refusal_is_not_retried_and_gives_the_fallback(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [Status(401, f"Incorrect API key provided: {KNOWN_SECRET}")]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "auth"})
        assert r.status_code == 200
        assert r.json()["data"]["respuesta"] == fallback_text(suite.business)
        assert len(fake_llm.requests) == 1
        detailed = (await client.get("/health/detailed")).text
        assert KNOWN_SECRET not in detailed


async def test_timeout_gives_the_fallback_in_time(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    fake_llm.script = [Stall(30)]
    settings = llm_settings(tmp_path, fake_llm, OPENAI_TIMEOUT="1")
    async with running_suite(settings) as (suite, client):
        started = trio.current_time()
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "slow"})
        elapsed = trio.current_time() - started
        assert r.status_code == 200
        assert r.json()["data"]["respuesta"] == fallback_text(suite.business)
        assert elapsed < 5  # bounded by OPENAI_TIMEOUT, never hanging
        assert suite.db is not None
        assert suite.db.scalar("SELECT source FROM messages WHERE role = 'assistant'") == "fallback"

"""Crash injection: the conversation actor dies mid-turn and the suite carries on."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.conftest import make_settings, running_suite


async def test_conversation_crash_is_restarted_and_the_next_chat_is_answered(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, IA_FAILPOINTS="conversation.turn=1")
    async with running_suite(settings) as (_suite, client):
        crashed = await client.post("/api/chat", json={"message": "Hola", "sessionId": "c"})
        # The request that was in flight gets a clear, retryable answer, never a hang.
        assert crashed.status_code == 503
        assert crashed.headers["Retry-After"] == "5"
        assert crashed.json()["success"] is False

        with trio.fail_after(10):
            while True:
                detailed = (await client.get("/health/detailed")).json()
                actor = {a["name"]: a for a in detailed["actors"]}["conversation"]
                if actor["state"] == "running" and actor["restarts"] == 1:
                    break
                await trio.sleep(0.05)
        assert actor["lastError"]["type"] == "InjectedFault"
        assert "conversation.turn" in actor["lastError"]["message"]
        assert detailed["status"] == "ok"

        answered = await client.post(
            "/api/chat", json={"message": "¿Hacen mantenciones?", "sessionId": "c"}
        )
        assert answered.status_code == 200
        assert answered.json()["success"] is True

        # The message that crashed us was still pending and got its one reply on restart.
        history = (await client.get("/api/chat/session/c")).json()["data"]["historial"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[0]["content"] == "Hola"


async def test_poison_message_gets_the_fallback_instead_of_a_crash_loop(tmp_path: Path) -> None:
    # Armed without a count: every attempt at this message crashes the actor.
    settings = make_settings(tmp_path, IA_FAILPOINTS="conversation.turn")
    async with running_suite(settings) as (suite, client):
        r = await client.post("/api/chat", json={"message": "Hola", "sessionId": "poison"})
        assert r.status_code == 503
        with trio.fail_after(15):
            while True:
                history = (await client.get("/api/chat/session/poison")).json()["data"]
                if history["mensajes"] == 2:
                    break
                await trio.sleep(0.05)
        assert "problema" in history["historial"][1]["content"]  # the fallback, once
        stats = {a.name: a for a in suite.actors()}
        assert stats["conversation"].restarts == 3
        assert suite.ready

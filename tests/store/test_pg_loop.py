"""The suite's own PostgreSQL connection lost while the server stays away (a relay in front
of the real server, cut): health says failing, the web chat and webhooks answer 503 with
Retry-After, nothing restarts; once the server is back the suite reconnects by itself and
answers again."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
import trio

from store.pg_loop import LoopDatabase
from tests.conftest import make_settings, postgres_schema, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.fakes.tcp_cut import TcpCut, tcp_cut
from tests.meta import channel_env, post_signed, whatsapp_text

PASSWORD = "pw-KNOWN-loop-connection"


async def chat(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/api/chat", json={"message": text, "sessionId": "corte"})


async def test_a_store_away_fails_health_and_answers_503_then_comes_back(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    with postgres_schema() as url:
        parts = urlsplit(url)
        with tcp_cut(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
            await _cut_and_restored(tmp_path, fake_graph, relay, parts)


async def _cut_and_restored(
    tmp_path: Path, fake_graph: FakeGraph, relay: TcpCut, parts: SplitResult
) -> None:
    netloc = f"{parts.username}:{PASSWORD}@127.0.0.1:{relay.port}"
    relayed = urlunsplit(parts._replace(netloc=netloc))
    settings = make_settings(tmp_path, DATABASE_URL=relayed, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        assert isinstance(suite.db, LoopDatabase)
        assert (await chat(client, "Hola")).status_code == 200

        relay.cut()
        await wait_for(lambda: not suite.db.is_connected(), 10)  # type: ignore[union-attr]
        r = await chat(client, "¿Sigues ahí?")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json()["error"].startswith("El asistente no puede guardar mensajes")
        raw = whatsapp_text("56955556666", "wamid.cut-store", "hola")
        hook = await post_signed(client, "whatsapp", raw)
        assert hook.status_code == 503  # Meta delivers it again
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["status"] == "failing"
        assert "la base de datos no responde (ConnectionLost)" in detailed["reasons"]
        assert detailed["store"]["reachable"] is False
        assert detailed["channels"] is None
        assert (await client.get("/health/ready")).status_code == 503
        await trio.sleep(2.5)  # reconnections fail while the server is away
        work = (await client.get("/health/detailed")).json()["work"]["store"]
        assert work["connected"] is False and work["failed_reconnects"] >= 1
        text = (await client.get("/health/detailed")).text
        assert PASSWORD not in text

        relay.restore()
        await wait_for(lambda: suite.db.is_connected(), 15)  # type: ignore[union-attr]
        assert (await chat(client, "Ya volví")).status_code == 200
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        await wait_for(lambda: fake_graph.texts(), 15)
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["store"]["reachable"] is True
        # Nothing restarted: the actors cut by the loss resumed in place (before, the
        # notifier crash-looped past the supervisor's intensity and the suite stopped).
        assert {a["name"]: a["restarts"] for a in detailed["actors"]} == dict.fromkeys(
            ("store", "cluster", "backup", "notifier", "classifier", "conversation", "ingress"), 0
        )
        work = detailed["work"]["store"]
        assert work["outlasted"] >= 1 and work["reconnects"] >= 1 and work["connected"]

"""POST /api/chat has a plain-ASGI path in front of Quart (actors/ingress/fast_chat.py):
its answers must be Quart's answers, header by header, and everything it does not take
(CORS, streams, bad bodies, the demo's sessions) must still get Quart's."""

from __future__ import annotations

from pathlib import Path

import httpx

from sales import identity
from tests.conftest import make_settings, running_suite

UNCOMPARED = {"date", "server", "content-length"}


async def plain_answers(client: httpx.AsyncClient) -> int:
    detailed = (await client.get("/health/detailed")).json()
    return int(detailed["work"]["ingress"]["plainChatAnswers"])


def headers_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in UNCOMPARED}


async def test_the_plain_path_answers_as_quart_does(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        plain = await client.post("/api/chat", json={"message": "Hola", "sessionId": "plain"})
        # An Origin header sends the request through Quart (CORS is Quart's).
        quart = await client.post(
            "/api/chat",
            json={"message": "Hola", "sessionId": "quart"},
            headers={"Origin": suite.url},
        )
        assert plain.status_code == quart.status_code == 200
        assert headers_of(plain) == headers_of(quart)
        plain_data, quart_data = plain.json()["data"], quart.json()["data"]
        assert plain_data.keys() == quart_data.keys()
        assert plain_data["respuesta"] == quart_data["respuesta"]
        assert plain_data["lead"] == quart_data["lead"]
        assert (plain_data["sessionId"], quart_data["sessionId"]) == ("plain", "quart")
        # A new visitor gets a session of their own on both paths.
        fresh = (await client.post("/api/chat", json={"message": "Hola"})).json()["data"]
        assert fresh["sessionId"].startswith("session_")
        metrics = (await client.get("/metrics")).text
        worker = identity.current().name
        line = (
            'ia_http_requests_total{method="POST",route="/api/chat",route_class="chat",'
            f'status="200",worker="{worker}"}} 3.0'
        )
        assert line in metrics
        assert await plain_answers(client) == 2  # "plain" and "fresh"; "quart" went through Quart


async def test_what_the_plain_path_does_not_take_gets_quarts_answer(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        empty = await client.post("/api/chat", json={"message": " ", "sessionId": "s"})
        assert empty.status_code == 400
        assert empty.json()["details"][0]["campo"] == "message"
        demo = await client.post("/api/chat", json={"message": "Hola", "sessionId": "sim:x"})
        assert demo.status_code == 400 and "sim:" in demo.json()["details"][0]["mensaje"]
        broken = await client.post(
            "/api/chat", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 400
        stream = await client.post(
            "/api/chat",
            json={"message": "Hola", "sessionId": "s"},
            headers={"Accept": "text/event-stream"},
        )
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "event: done" in stream.text
        assert await plain_answers(client) == 0

"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, the Chat Completions protocol
(plain and streamed), answering from a script the test writes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from tests.fakes import serve_on_loopback


@dataclass(frozen=True)
class Answer:
    content: str
    prompt_tokens: int = 120
    completion_tokens: int = 30
    chunk_delay: float = 0.005  # between streamed pieces of 7 characters


@dataclass(frozen=True)
class Status:
    code: int
    message: str = "fake error"
    retry_after: float | None = None  # seconds, sent as `Retry-After`


@dataclass(frozen=True)
class Stall:
    seconds: float
    then: Answer | None = None


@dataclass(frozen=True)
class Wait:
    """Answer only once the test sets `until` (a model that is still thinking)."""

    until: trio.Event
    then: Answer | None = None


@dataclass(frozen=True)
class EchoLast:
    """Answer "eco N: <the last user message>" after `delay` seconds. N counts every
    message the model was shown: it grows with each stored reply, so every reply of a
    conversation is told apart."""

    delay: float = 0.0


Behaviour = Answer | Status | Stall | Wait | EchoLast


def lead_json(reply: str, **lead: Any) -> str:
    base = {
        "nombre": None,
        "telefono": None,
        "servicio": None,
        "comuna": None,
        "urgencia": None,
        "estado": "frio",
    }
    return json.dumps({"reply": reply, "lead": {**base, **lead}}, ensure_ascii=False)


@dataclass
class FakeOpenAI:
    script: list[Behaviour] = field(default_factory=list)
    default: Behaviour = field(default_factory=lambda: Answer(lead_json("Respuesta de prueba.")))
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # trio.current_time() of each request
    answered: list[tuple[float, int]] = field(default_factory=list)  # (time, status) of each
    url: str = ""

    def next_behaviour(self) -> Behaviour:
        return self.script.pop(0) if self.script else self.default

    def app(self) -> QuartTrio:
        app = QuartTrio("fake_openai")

        @app.post("/v1/chat/completions")
        async def completions() -> Response:
            self.arrived.append(trio.current_time())
            body = await request.get_json()
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            behaviour = self.next_behaviour()
            if isinstance(behaviour, EchoLast):
                await trio.sleep(behaviour.delay)
                said = [m["content"] for m in body["messages"] if m["role"] == "user"]
                behaviour = Answer(lead_json(f"eco {len(body['messages'])}: {said[-1]}"))
            if isinstance(behaviour, Stall):
                await trio.sleep(behaviour.seconds)
                behaviour = behaviour.then or self.default
            if isinstance(behaviour, Wait):
                await behaviour.until.wait()
                behaviour = behaviour.then or self.default
            if isinstance(behaviour, Status):
                self.answered.append((trio.current_time(), behaviour.code))
                response = Response(
                    json.dumps(
                        {"error": {"message": behaviour.message, "type": "fake", "code": None}}
                    ),
                    status=behaviour.code,
                    content_type="application/json",
                )
                if behaviour.retry_after is not None:
                    response.headers["Retry-After"] = f"{behaviour.retry_after:g}"
                return response
            assert isinstance(behaviour, Answer)
            self.answered.append((trio.current_time(), 200))
            if body.get("stream"):
                return _stream(body, behaviour)
            return Response(
                json.dumps(_completion(body, behaviour)), content_type="application/json"
            )

        return app


def _completion(body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer.content},
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }


def _stream(body: dict[str, Any], answer: Answer) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
        }
        text = answer.content
        for i in range(0, len(text), 7):
            piece = {
                **base,
                "choices": [
                    {"index": 0, "delta": {"content": text[i : i + 7]}, "finish_reason": None}
                ],
            }
            yield f"data: {json.dumps(piece)}\n\n".encode()
            await trio.sleep(answer.chunk_delay)
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(last)}\n\n".encode()
        usage = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
        }
        yield f"data: {json.dumps(usage)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    response = Response(chunks(), content_type="text/event-stream")
    response.timeout = None
    return response


async def serve_fake(nursery: trio.Nursery, fake: FakeOpenAI) -> FakeOpenAI:
    fake.url = await serve_on_loopback(nursery, fake.app()) + "/v1"
    return fake

"""A fake of Meta's Graph API on 127.0.0.1: WhatsApp Cloud API and Instagram Messaging sends,
recorded in order, failing on demand with Meta's real error shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from tests.fakes import serve_on_loopback

VERSION = "v21.0"


@dataclass(frozen=True)
class Fail:
    status: int
    code: int
    message: str = "fake failure"
    subcode: int | None = None


@dataclass
class FakeGraph:
    failures: list[Fail] = field(default_factory=list)  # the next sends fail, in order
    sends: list[dict[str, Any]] = field(default_factory=list)  # what was accepted
    attempts: list[dict[str, Any]] = field(default_factory=list)  # everything tried
    tokens: list[str] = field(default_factory=list)
    url: str = ""
    counter: int = 0
    # Set: a send is accepted, then its answer is held until the event is set (a request
    # cut by a crash after Meta took it).
    hold: trio.Event | None = None

    def app(self) -> QuartTrio:
        app = QuartTrio("fake_graph")

        @app.post(f"/{VERSION}/<sender>/messages")
        async def messages(sender: str) -> Response:
            body = await request.get_json()
            self.tokens.append(request.headers.get("Authorization", ""))
            record = {"sender": sender, **body}
            self.attempts.append(record)
            if self.failures:
                fail = self.failures.pop(0)
                error: dict[str, Any] = {
                    "message": fail.message,
                    "type": "OAuthException",
                    "code": fail.code,
                    "fbtrace_id": "AbCdEf",
                }
                if fail.subcode is not None:
                    error["error_subcode"] = fail.subcode
                return Response(
                    json.dumps({"error": error}),
                    status=fail.status,
                    content_type="application/json",
                )
            self.sends.append(record)
            self.counter += 1
            if self.hold is not None and body.get("type") == "text":
                await self.hold.wait()
            if body.get("messaging_product") == "whatsapp":
                if body.get("status") == "read":
                    return _json({"success": True})
                return _json(
                    {
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                        "messages": [{"id": f"wamid.fake-{self.counter}"}],
                    }
                )
            return _json(
                {"recipient_id": body["recipient"]["id"], "message_id": f"mid.fake-{self.counter}"}
            )

        return app

    def texts(self, channel: str = "whatsapp") -> list[tuple[str, str]]:
        """(recipient, text) of the accepted text sends, in order."""
        if channel == "whatsapp":
            return [(s["to"], s["text"]["body"]) for s in self.sends if s.get("type") == "text"]
        return [
            (s["recipient"]["id"], s["message"]["text"]) for s in self.sends if "recipient" in s
        ]


def _json(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data), content_type="application/json")


async def serve_graph(nursery: trio.Nursery, fake: FakeGraph) -> FakeGraph:
    fake.url = await serve_on_loopback(nursery, fake.app()) + f"/{VERSION}"
    return fake

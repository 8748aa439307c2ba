"""POST /api/chat in plain ASGI, in front of Quart: the common request (a JSON body that
passes validation, no CORS, no streaming) is answered without Quart's request context,
routing, hooks and Response objects, with the headers Quart's hooks would have set. Any
other request, and any body this path does not like, goes to Quart unchanged (its body
replayed), so every refusal, CORS answer and stream keeps one implementation."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from store.errors import StoreUnavailable

from .app import API_HEADERS, MAX_BODY_BYTES, SECURITY_HEADERS
from .chat import (
    MAX_MESSAGE_CHARS,
    RETRY_AFTER_SECONDS,
    STORE_UNAVAILABLE,
    UNAVAILABLE,
    _validate_chat,
    answer_plain,
    is_sandbox_session,
    new_session_id,
    turn_json,
)
from .context import IngressContext
from .metrics import Metrics
from .responses import has_lone_surrogate, loads_json

log = logging.getLogger("ingress.chat")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE = "/api/chat"
# What Quart and the app's after_request hooks set on an /api/ JSON answer (app.py); a
# test compares both paths' answers header by header.
HEADERS = [
    (b"content-type", b"application/json; charset=utf-8"),
    (b"vary", b"Origin"),
    *((name.lower().encode(), value.encode()) for name, value in (*API_HEADERS, *SECURITY_HEADERS)),
]


class FastChat:
    def __init__(self, app: ASGIApp, ctx: IngressContext, metrics: Metrics) -> None:
        self.app = app
        self.ctx = ctx
        self.http = metrics.http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ROUTE or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        length = self._plain_length(scope)
        if length is None:
            await self.app(scope, receive, send)
            return
        body, rest = await _read_body(receive, length)
        text_session = _chat_fields(body) if rest is None else None
        if text_session is None:
            await self.app(scope, _replay(body, rest, receive), send)
            return
        text, session_id = text_session
        retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        try:
            result = await answer_plain(self.ctx, session_id, text)
        except StoreUnavailable:
            result = None
            status, extra = 503, retry
            data: dict[str, Any] = {"success": False, "error": STORE_UNAVAILABLE}
        else:
            status, extra = (503, retry) if result is None else (200, [])
            data = (
                {"success": False, "error": UNAVAILABLE}
                if result is None
                else {"success": True, "data": turn_json(result, session_id)}
            )
        out = json.dumps(data, ensure_ascii=False)
        if has_lone_surrogate(out):
            out = json.dumps(data)
        content = out.encode()
        headers = [*HEADERS, *extra, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self.ctx.plain_chat_answers += 1
        took = time.perf_counter() - started
        self.http.observe(ROUTE, "POST", status, took)
        if result is not None:
            self.http.chat_answered(took, result.model_seconds)

    def _plain_length(self, scope: Scope) -> int | None:
        """The body's length when the request is the plain kind; None: Quart's."""
        length: int | None = None
        json_type = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    return None
                length = int(value)
            elif name == b"content-type":
                json_type = value.split(b";", 1)[0].strip().lower() == b"application/json"
            elif name == b"origin" or name == b"transfer-encoding":
                return None  # CORS, chunked bodies: Quart's
            elif name == b"accept" and b"text/event-stream" in value:
                return None  # a stream: Quart's
        if not json_type or length is None or length > MAX_BODY_BYTES:
            return None
        return length


async def _read_body(receive: Receive, length: int) -> tuple[bytes, Message | None]:
    """The body; with the message that was not a body part, if one came (a disconnect)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), message
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), None


def _chat_fields(body: bytes) -> tuple[str, str] | None:
    """Text and session of a valid chat body with a session; None: let Quart answer."""
    try:
        data = loads_json(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    text, session_id, problems = _validate_chat(data)
    if problems or len(text) > MAX_MESSAGE_CHARS:
        return None
    if session_id is not None and is_sandbox_session(session_id):
        return None
    return text, session_id or new_session_id()


def _replay(body: bytes, rest: Message | None, receive: Receive) -> Receive:
    """`receive` for Quart: the body already read, then whatever comes next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if rest is not None:
        pending.append(rest)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed

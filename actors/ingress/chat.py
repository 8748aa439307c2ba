"""The web chat API, in the original system's request and response shapes.

POST /api/chat stores the user's message before anything else, hands it to the conversation
actor and waits (bounded) for the reply; with `Accept: text/event-stream` the reply streams
as Server-Sent Events. The common request (a valid JSON body, no CORS, no stream) is taken
by the plain-ASGI path in front of Quart (fast_chat.py), which runs the same `answer_plain`.
A request never hangs and never shows a traceback: it gets the reply, the fallback reply,
or 503 with Retry-After while the conversation actor is down or the store does not answer."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any, TypeGuard

import trio
from quart import Blueprint, Response, g, request

from actors.messages import InboundMessage, LeadView, ReplyChunk, ReplyEvent, TurnCompleted
from store import conversations, leads, messages, sandbox

from .context import IngressContext
from .responses import error_response, has_lone_surrogate, json_response, read_json_object

log = logging.getLogger("ingress.chat")

MAX_MESSAGE_CHARS = 4000
REPLY_SLOT_BUFFER = 64
HAND_OFF_TIMEOUT = 2.0  # seconds to queue a message for the conversation actor
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "El asistente se está reiniciando. Intenta de nuevo en unos segundos."
# The store cannot be reached now (PostgreSQL restarting, the connection being reopened).
STORE_UNAVAILABLE = (
    "El asistente no puede guardar mensajes en este momento. Intenta de nuevo en unos segundos."
)
_SESSION_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")  # always with fullmatch: "$" allows "\n"
BROKEN_CHARACTER = "contiene un carácter inválido (por ejemplo, un emoji cortado)"


def lead_json(lead: LeadView) -> dict[str, Any]:
    return {
        "nombre": lead.name,
        "telefono": lead.phone,
        "servicio": lead.service,
        "comuna": lead.area,
        "estado": lead.classification,
        "canal": lead.channel,
        "completo": lead.complete,
        "prioridad": lead.priority,
        # Beyond the original's shape (a widget that ignores them keeps working):
        "razones": list(lead.reasons),
        "puntaje": lead.score,
    }


def turn_json(result: TurnCompleted, session_id: str) -> dict[str, Any]:
    return {
        "respuesta": result.reply,
        "sessionId": session_id,
        "lead": lead_json(result.lead),
        "conversacionCompleta": result.lead.complete,
        "leadGuardado": result.lead.saved,
    }


def _validate_chat(body: dict[str, Any]) -> tuple[str, str | None, list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    message = body.get("message")
    if message is not None and not isinstance(message, str):  # 123, a list, an object
        problems.append({"campo": "message", "mensaje": "El mensaje debe ser texto"})
        message = ""
    elif not isinstance(message, str) or not message.strip():
        problems.append({"campo": "message", "mensaje": "El mensaje no puede estar vacío"})
        message = ""
    elif has_lone_surrogate(message):  # valid JSON, but no text that can be stored or sent
        problems.append({"campo": "message", "mensaje": f"El mensaje {BROKEN_CHARACTER}"})
        message = ""
    session_id = body.get("sessionId")
    if session_id is not None and not valid_session_id(session_id):
        problems.append(
            {
                "campo": "sessionId",
                "mensaje": "sessionId debe tener de 1 a 128 letras, números o . _ : -",
            }
        )
        session_id = None
    return message.strip(), session_id, problems


def valid_session_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def new_session_id() -> str:
    return "session_" + secrets.token_urlsafe(16)


def session_json(
    ctx: IngressContext, session_id: str, conversation: conversations.Conversation
) -> dict[str, Any]:
    """A web session as the chat page reloads it: its lead and its messages."""
    history = messages.history(ctx.db, conversation.id)
    lead = leads.for_conversation(ctx.db, conversation.id)
    return {
        "sessionId": session_id,
        "canal": "web",
        "mensajes": len(history),
        "leadId": conversation.lead_id,
        "lead": lead_json(LeadView.of(lead, conversation.id, "web")),
        "historial": [
            {"role": m.role, "content": m.content, "fecha": m.created_at} for m in history
        ],
    }


def create_chat_blueprint(ctx: IngressContext) -> Blueprint:
    bp = Blueprint("chat", __name__)

    @bp.post("/api/chat")
    async def chat() -> Response:
        parsed = await read_chat_request()
        if isinstance(parsed, Response):
            return parsed
        text, session_id = parsed
        if session_id is not None and is_sandbox_session(session_id):
            return _sandbox_refused()
        session_id = session_id or new_session_id()
        return await answer(ctx, session_id, session_id, text)

    @bp.post("/api/chat/reset")
    async def reset() -> Response:
        body = await read_json_object()
        if isinstance(body, Response):
            return body
        session_id = body.get("sessionId")
        if not valid_session_id(session_id):
            return error_response(
                400,
                "El sessionId es requerido",
                [{"campo": "sessionId", "mensaje": "El sessionId es requerido"}],
            )
        if is_sandbox_session(session_id):
            return _sandbox_refused()
        closed = conversations.close_conversation(ctx.db, "web", session_id)
        return json_response(
            {
                "success": True,
                "message": "Conversación reiniciada",
                "data": {"sessionId": session_id, "cerrada": closed},
            }
        )

    @bp.get("/api/chat/session/<session_id>")
    async def session(session_id: str) -> Response:
        if not valid_session_id(session_id) or is_sandbox_session(session_id):
            return error_response(
                400, "sessionId inválido", [{"campo": "sessionId", "mensaje": "sessionId inválido"}]
            )
        conversation = conversations.find_active(ctx.db, "web", session_id)
        if conversation is None:
            return error_response(404, "Conversación no encontrada")
        return json_response({"success": True, "data": session_json(ctx, session_id, conversation)})

    return bp


async def read_chat_request() -> tuple[str, str | None] | Response:
    """The message and the optional sessionId of a chat request, or the 4xx that says why
    not (nothing stored)."""
    body = await read_json_object()
    if isinstance(body, Response):
        return body
    text, session_id, problems = _validate_chat(body)
    if problems:
        return error_response(400, "Datos de entrada inválidos", problems)
    if len(text) > MAX_MESSAGE_CHARS:
        return error_response(
            413,
            f"El mensaje supera {MAX_MESSAGE_CHARS} caracteres",
            [
                {
                    "campo": "message",
                    "mensaje": f"El mensaje no puede superar {MAX_MESSAGE_CHARS} caracteres",
                }
            ],
        )
    return text, session_id


async def answer(
    ctx: IngressContext, conversation_key: str, session_id: str, text: str
) -> Response:
    """One web chat turn in the web conversation `conversation_key`, awaited (bounded) or
    streamed. The answer names `session_id`, the key the client knows (the demo's differs:
    `sim:` + it)."""
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    if not streaming:
        result = await answer_plain(ctx, conversation_key, text)
        if result is None:
            return _unavailable()
        g.model_seconds = result.model_seconds  # for /metrics' time beyond the model
        return json_response({"success": True, "data": turn_json(result, session_id)})
    slot = await hand_off(ctx, conversation_key, text, stream=True)
    if slot is None:
        return _unavailable()
    return await _stream_reply(ctx, slot, session_id)


async def answer_plain(
    ctx: IngressContext, conversation_key: str, text: str
) -> TurnCompleted | None:
    """One web chat turn answered whole; None: the assistant is unavailable (restarting, or
    it died mid-turn; the message is stored all the same)."""
    slot = await hand_off(ctx, conversation_key, text, stream=False)
    if slot is None:
        return None
    async with slot:
        return await _wait_for_turn(ctx, slot)


async def hand_off(
    ctx: IngressContext, conversation_key: str, text: str, *, stream: bool
) -> trio.MemoryReceiveChannel[ReplyEvent] | None:
    """Store the message (a row before any work), hand it to the conversation actor, and
    return where its turn will be heard; None when the actor cannot take it now."""
    if not ctx.suite.is_running("conversation"):
        return None
    with ctx.db.transaction():
        conversation = conversations.open_conversation(ctx.db, "web", conversation_key)
        # Its first attempt counted here: the conversation actor needs no commit to start.
        stored = messages.add_inbound(ctx.db, conversation.id, "web", text, attempts=1)
    assert stored is not None  # no external id, so never a duplicate
    slot_send, slot_receive = trio.open_memory_channel[ReplyEvent](REPLY_SLOT_BUFFER)
    inbound = InboundMessage(
        conversation.id, stored.id, "web", text, slot_send, stream, attempted=True
    )
    with trio.move_on_after(HAND_OFF_TIMEOUT) as handoff:
        await ctx.inbound_messages.send(inbound)
    if handoff.cancelled_caught:
        slot_receive.close()
        messages.mark_failed(ctx.db, stored.id)  # the user is told to send it again
        return None
    return slot_receive


def is_sandbox_session(session_id: str) -> bool:
    """A web session in the demo's sandbox (any case: "SIM:" is refused too, so no public
    conversation ever looks like one)."""
    return sandbox.is_sandbox_key(session_id.lower())


def _sandbox_refused() -> Response:
    return error_response(
        400,
        "Datos de entrada inválidos",
        [
            {
                "campo": "sessionId",
                "mensaje": "sessionId no puede empezar con «sim:» (reservado para la demo)",
            }
        ],
    )


def _unavailable() -> Response:
    response = error_response(503, UNAVAILABLE)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _wait_for_turn(
    ctx: IngressContext, slot: trio.MemoryReceiveChannel[ReplyEvent]
) -> TurnCompleted | None:
    """The turn's result; None if the conversation actor died mid-turn."""
    with trio.move_on_after(ctx.settings.chat_timeout):
        async for event in slot:
            if isinstance(event, TurnCompleted):
                return event
        return None
    log.error("chat reply not ready after %.0fs", ctx.settings.chat_timeout)
    return None


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream_reply(
    ctx: IngressContext, slot: trio.MemoryReceiveChannel[ReplyEvent], session_id: str
) -> Response:
    async def events() -> AsyncIterator[bytes]:
        async with slot:
            yield _sse("start", {"sessionId": session_id})
            with trio.move_on_after(ctx.settings.chat_timeout):
                async for event in slot:
                    if isinstance(event, ReplyChunk):
                        yield _sse("token", {"text": event.text})
                    elif isinstance(event, TurnCompleted):
                        yield _sse("done", {"success": True, "data": turn_json(event, session_id)})
                        return
            yield _sse(
                "error",
                {"success": False, "error": "El asistente no pudo responder. Intenta de nuevo."},
            )

    response = Response(events(), status=200, content_type="text/event-stream; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None
    return response

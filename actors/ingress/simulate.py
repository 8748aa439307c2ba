"""Channel simulation and the demo, for the owner (or anyone on a `DEMO_MODE=1` server): a
message pushed through the same pipeline as a real webhook or web chat (stored, answered by
the conversation actor, classified, sent through the outbox). Simulated people have `sim:`
identities, so everything they cause lands in the sandbox (store/sandbox.py): never among
the real leads, their statistics, CSV, alerts or follow-ups, and the notifier never sends
to them."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import trio
from quart import Blueprint, Response, request

from actors.messages import InboundMessage, LeadView
from store import conversations, leads, messages, sandbox

from .admin_auth import AdminAuth, Handler
from .chat import BROKEN_CHARACTER, answer, lead_json, new_session_id, read_chat_request
from .context import IngressContext
from .meta import InboundEvent
from .responses import error_response, has_lone_surrogate, json_response, read_json_object
from .webhooks import store_batch

SIMULATED = sandbox.KEY_PREFIX
CHANNELS = ("whatsapp", "instagram", "web")
MAX_CHARS = 4000
_WHO = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # with fullmatch: "$" would allow a "\n"
BAD_WHO = "de: letras, números, . _ - (hasta 64)"
LOG_IN = "Inicia sesión en el panel (/dashboard) para usar la demo y la simulación"


def owner_logged_in(ctx: IngressContext, auth: AdminAuth) -> bool:
    return ctx.settings.admin_configured and auth.session() is not None


def demo_or_owner(ctx: IngressContext, auth: AdminAuth) -> Callable[[Handler], Handler]:
    """A guard: anyone on a public demo server (`DEMO_MODE=1`); elsewhere the owner only,
    as `auth.required` (session, CSRF on changes), and 401 when no password is set."""

    def guard(handler: Handler) -> Handler:
        owner_only = auth.required(handler)

        @wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Response:
            if ctx.settings.demo_mode:
                return await handler(*args, **kwargs)
            if not ctx.settings.admin_configured:
                return error_response(401, LOG_IN)
            return await owner_only(*args, **kwargs)

        guarded.demo_or_owner = True  # type: ignore[attr-defined]  # for the route audit test
        return guarded

    return guard


def push_message(ctx: IngressContext, channel: str, sender: str, text: str) -> int:
    """The simulated person's message stored as a real one of `channel` would be and handed
    to the conversation actor; its conversation's id."""
    db = ctx.db
    if channel == "web":
        with db.transaction():
            conversation = conversations.open_conversation(db, "web", sender)
            stored = messages.add_inbound(db, conversation.id, "web", text)
        assert stored is not None
        notices = [InboundMessage.of(stored)]
        conversation_id = conversation.id
    else:
        event = InboundEvent(
            channel, sender, f"sim-{uuid.uuid4().hex}", int(time.time() * 1000),
            "text", text, True,
        )  # fmt: skip
        notices = store_batch(ctx, [event], []).fresh
        conversation_id = notices[0].conversation_id
    for notice in notices:
        try:
            ctx.inbound_messages.send_nowait(notice)
        except trio.WouldBlock:
            break  # stored: the conversation actor's sweep finds it
    return conversation_id


def simulated_lead(ctx: IngressContext, said: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The lead card of the simulated person whose messages are `said` (oldest first), for
    their newest conversation, as the chat shows a visitor theirs: only what that
    conversation collected; None before they wrote."""
    if not said:
        return None
    conversation_id, channel = said[-1]["conversation_id"], said[-1]["channel"]
    lead = leads.for_conversation(ctx.db, conversation_id)
    return lead_json(LeadView.of(lead, conversation_id, channel))


def create_simulate_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("simulate", __name__)
    db = ctx.db
    demo = demo_or_owner(ctx, auth)

    @bp.post("/api/simulate/chat")
    @demo
    async def chat() -> Response:
        """/api/chat for the demo: same request and answer, in the sandbox conversation
        `sim:` + sessionId."""
        parsed = await read_chat_request()
        if isinstance(parsed, Response):
            return parsed
        text, session_id = parsed
        session_id = session_id or new_session_id()
        return await answer(ctx, SIMULATED + session_id, session_id, text)

    @bp.post("/api/simulate/<channel>")
    @demo
    async def simulate(channel: str) -> Response:
        if channel not in CHANNELS:
            return error_response(404, f"Canal desconocido; usa {', '.join(CHANNELS)}")
        body = await read_json_object()
        if isinstance(body, Response):
            return body
        who, text = body.get("de"), body.get("mensaje")
        if not isinstance(who, str) or not _WHO.fullmatch(who):
            return error_response(400, BAD_WHO)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
            return error_response(400, f"mensaje: texto de 1 a {MAX_CHARS} caracteres")
        if has_lone_surrogate(text):
            return error_response(400, f"mensaje: {BROKEN_CHARACTER}")
        conversation_id = push_message(ctx, channel, SIMULATED + who, text.strip())
        return json_response({"success": True, "conversationId": conversation_id}, status=202)

    @bp.get("/api/simulate/sandbox")
    @demo
    async def view() -> Response:
        """What simulated people received. The owner sees the whole sandbox (or one person
        with `?de=`); a visitor of a public demo only the person they simulate."""
        who = request.args.get("de")
        if who is not None and not _WHO.fullmatch(who):
            return error_response(400, BAD_WHO)
        if who is None and not owner_logged_in(ctx, auth):
            return error_response(400, "de es obligatorio: la persona simulada que quieres ver")
        key = None if who is None else SIMULATED + who
        data: dict[str, Any] = dict(sandbox.summary(db, key))
        if key is not None:
            data["lead"] = simulated_lead(ctx, data["mensajes"])
        return json_response({"success": True, "data": data})

    @bp.delete("/api/simulate/sandbox")
    @auth.required
    async def clear() -> Response:
        """Empty the sandbox (the owner only, even on a demo server)."""
        return json_response({"success": True, "eliminadas": sandbox.clear(db)})

    return bp

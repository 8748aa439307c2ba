"""Channel simulation for demos without a Meta account (admin only): a message pushed
through the same pipeline as a real webhook (stored, answered by the conversation actor,
classified, sent through the outbox). Simulated people have `sim:` identities, and the
notifier never sends to them: their outbound messages land in a sandbox the demo shows."""

from __future__ import annotations

import re
import time
import uuid

import trio
from quart import Blueprint, Response, request

from actors.messages import InboundMessage
from store import conversations, messages

from .admin_auth import AdminAuth
from .context import IngressContext
from .meta import InboundEvent
from .responses import error_response, json_response
from .webhooks import store_batch

SIMULATED = "sim:"
CHANNELS = ("whatsapp", "instagram", "web")
MAX_CHARS = 4000
_WHO = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def create_simulate_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("simulate", __name__)
    db = ctx.db

    @bp.post("/api/simulate/<channel>")
    @auth.required
    async def simulate(channel: str) -> Response:
        if channel not in CHANNELS:
            return error_response(404, f"Canal desconocido; usa {', '.join(CHANNELS)}")
        body = await request.get_json(silent=True)
        who = body.get("de") if isinstance(body, dict) else None
        text = body.get("mensaje") if isinstance(body, dict) else None
        if not isinstance(who, str) or not _WHO.match(who):
            return error_response(400, "de: letras, números, . _ - (hasta 64)")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
            return error_response(400, f"mensaje: texto de 1 a {MAX_CHARS} caracteres")
        sender = SIMULATED + who
        if channel == "web":
            with db.transaction():
                conversation = conversations.open_conversation(db, "web", sender)
                stored = messages.add_inbound(db, conversation.id, "web", text.strip())
            assert stored is not None
            notices = [InboundMessage.of(stored)]
            conversation_id = conversation.id
        else:
            event = InboundEvent(
                channel, sender, f"sim-{uuid.uuid4().hex}", int(time.time() * 1000),
                "text", text.strip(), True,
            )  # fmt: skip
            notices = store_batch(ctx, [event], [])
            conversation_id = notices[0].conversation_id
        for notice in notices:
            try:
                ctx.inbox.send_nowait(notice)
            except trio.WouldBlock:
                break  # stored: the conversation actor's sweep finds it
        return json_response({"success": True, "conversationId": conversation_id}, status=202)

    @bp.get("/api/simulate/sandbox")
    @auth.required
    async def sandbox() -> Response:
        """What simulated people received: the conversation and, on WhatsApp/Instagram,
        the sends the notifier kept in the sandbox."""
        rows = db.all(
            "SELECT o.id, o.conversation_id, o.channel, o.recipient, o.kind, o.body, o.status"
            " FROM outbox o WHERE o.recipient LIKE 'sim:%' AND o.kind != 'read'"
            " ORDER BY o.id DESC LIMIT 100"
        )
        chats = db.all(
            "SELECT m.conversation_id, c.channel, m.role, m.content, m.created_at"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.external_key LIKE 'sim:%' ORDER BY m.id DESC LIMIT 200"
        )
        return json_response(
            {"success": True, "data": {"envios": rows, "mensajes": list(reversed(chats))}}
        )

    return bp

"""A person takes a conversation over from the dashboard: the bot paused, handed back, and
the person's reply stored and sent (WhatsApp/Instagram) through the same outbox as the
bot's."""

from __future__ import annotations

import contextlib
import logging

import trio
from quart import Blueprint, Response

from actors.messages import OutboxReady
from sales.channels import MESSAGING, TEXT_LIMIT, split_text
from store import conversations, messages, outbox
from store.conversations import Conversation
from store.db import Database

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response, read_text_field

events = logging.getLogger("business")  # one line per business event, no personal data

MAX_REPLY_CHARS = 4000


def wake_notifier(ctx: IngressContext, conversation_id: int) -> None:
    """Tell the notifier a send is queued; with its queue full, its sweep finds it."""
    if ctx.notifier_notices is not None:
        with contextlib.suppress(trio.WouldBlock):
            ctx.notifier_notices.send_nowait(OutboxReady(conversation_id))


def set_paused(db: Database, conversation_id: int, paused: bool) -> Response:
    if not conversations.set_paused(db, conversation_id, paused):
        return error_response(404, "Conversación no encontrada")
    events.info(
        "conversation %d %s",
        conversation_id,
        "taken over by a person" if paused else "returned to the bot",
        extra={"ctx": {"event": "hand_off_taken" if paused else "hand_off_returned"}},
    )
    return json_response({"success": True, "pausada": paused})


def store_reply(db: Database, conversation: Conversation, text: str) -> int:
    """The person's reply as a message, and on a messaging channel queued to be sent, in
    one transaction; its message id."""
    with db.transaction():
        message_id = messages.add_human_reply(db, conversation.id, conversation.channel, text)
        if conversation.channel in MESSAGING:
            outbox.enqueue(
                db,
                conversation.id,
                conversation.channel,
                conversation.external_key,
                "text",
                split_text(text, TEXT_LIMIT[conversation.channel]),
                message_id,
            )
    return message_id


def create_conversations_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_conversations", __name__)
    db = ctx.db

    @bp.post("/api/conversations/<int:conversation_id>/pause")
    @auth.required
    async def pause(conversation_id: int) -> Response:
        return set_paused(db, conversation_id, True)

    @bp.post("/api/conversations/<int:conversation_id>/resume")
    @auth.required
    async def resume(conversation_id: int) -> Response:
        return set_paused(db, conversation_id, False)

    @bp.post("/api/conversations/<int:conversation_id>/reply")
    @auth.required
    async def reply(conversation_id: int) -> Response:
        """A person's reply from the dashboard, through the same outbox as the bot's."""
        text = await read_text_field("texto", MAX_REPLY_CHARS)
        if isinstance(text, Response):
            return text
        conversation = conversations.get(db, conversation_id)
        if conversation is None:
            return error_response(404, "Conversación no encontrada")
        message_id = store_reply(db, conversation, text.strip())
        if conversation.channel in MESSAGING:
            wake_notifier(ctx, conversation.id)
        events.info(
            "human reply in conversation %d (%s)",
            conversation.id,
            conversation.channel,
            extra={"ctx": {"event": "human_reply"}},
        )
        return json_response({"success": True, "id": message_id})

    return bp

"""WhatsApp and Instagram webhooks.

GET answers Meta's verify handshake. POST checks `X-Hub-Signature-256` against the raw body,
reads every message and status of the batch, commits them (duplicates ignored by the store's
unique (channel, external id)) and only then answers 200, at once: no model call happens on
the request path. Only a bad signature, a body that is not JSON or the wrong `object` is a
4xx: what the assistant cannot read (and reactions, edits, deletions, malformed items) is
recorded for the owner (`store/unsupported.py`), never a reason to refuse the batch.
The conversation actor hears of new rows through a notice; if its inbox is full the rows wait
in the store, where the actor's sweep finds them."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio
from quart import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from actors.channels import MESSAGING
from actors.messages import InboundMessage
from store import conversations, messages, outbox, unsupported
from store.unsupported import UnsupportedEvent

from .context import IngressContext
from .meta import (
    SIGNATURE_HEADER,
    InboundEvent,
    Notice,
    PayloadError,
    StatusEvent,
    WebhookBatch,
    parse_instagram,
    parse_whatsapp,
    signature_valid,
)
from .responses import error_response, json_response

log = logging.getLogger("ingress.webhooks")

Parser = Callable[[Any], WebhookBatch]


def webhook_path(channel: str) -> str:
    return f"/api/{channel}/webhook"


WEBHOOK_PATHS = frozenset(webhook_path(channel) for channel in MESSAGING)


def create_webhooks_blueprint(ctx: IngressContext) -> Blueprint:
    bp = Blueprint("webhooks", __name__)
    settings = ctx.settings

    def instagram(payload: Any) -> WebhookBatch:
        return parse_instagram(payload, settings.instagram_account_id)

    for channel, verify_token, parse in (
        ("whatsapp", settings.whatsapp_verify_token, parse_whatsapp),
        ("instagram", settings.instagram_verify_token, instagram),
    ):
        bp.add_url_rule(
            webhook_path(channel),
            f"{channel}_verify",
            _verify_handler(verify_token),
            methods=["GET"],
        )
        bp.add_url_rule(
            webhook_path(channel),
            f"{channel}_receive",
            _receive_handler(ctx, channel, parse),
            methods=["POST"],
        )
    return bp


def _verify_handler(token: str | None) -> Callable[[], Any]:
    async def verify() -> Response:
        args = request.args
        offered = args.get("hub.verify_token", "")
        if (
            token
            and args.get("hub.mode") == "subscribe"
            and hmac.compare_digest(offered.encode(), token.encode())
            and args.get("hub.challenge")
        ):
            return Response(args["hub.challenge"], content_type="text/plain")
        return error_response(403, "Token de verificación inválido")

    return verify


def _receive_handler(ctx: IngressContext, channel: str, parse: Parser) -> Callable[[], Any]:
    async def receive() -> Response:
        secret = ctx.settings.meta_app_secret
        if not secret:
            return error_response(
                503, "Webhook sin configurar: defina META_APP_SECRET (el App Secret de Meta)"
            )
        try:
            raw = await request.get_data(as_text=False)
        except RequestEntityTooLarge:
            return error_response(413, "El cuerpo de la petición es demasiado grande")
        assert isinstance(raw, bytes)
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            return error_response(401, f"Falta la cabecera {SIGNATURE_HEADER}")
        if not signature_valid(secret, raw, header):
            return error_response(403, "Firma inválida")
        try:
            batch = parse(json.loads(raw))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            # json's own errors are ValueErrors too; PayloadError says what is wrong.
            reason = str(exc) if isinstance(exc, PayloadError) else "JSON inválido"
            return error_response(400, "Webhook inválido", [{"campo": "body", "mensaje": reason}])
        for problem in batch.problems:
            log.warning("%s webhook: %s (the rest of the batch is read)", channel, problem)
        fresh = store_batch(ctx, batch.inbound, batch.statuses, batch.notices)
        for notice in fresh:
            try:
                ctx.inbox.send_nowait(notice)
            except trio.WouldBlock:
                break  # the rows are committed; the conversation actor's sweep finds them
        return json_response(
            {
                "success": True,
                "received": len(batch.inbound),
                "statuses": len(batch.statuses),
                "notices": len(batch.notices),
            }
        )

    receive.__name__ = f"{channel}_receive"
    return receive


def store_batch(
    ctx: IngressContext,
    inbound: Sequence[InboundEvent],
    statuses: Sequence[StatusEvent],
    notices: Sequence[Notice] = (),
) -> list[InboundMessage]:
    """Commit a webhook's messages, notices and receipts in one transaction; notices for
    the conversation actor about new rows."""
    fresh: list[InboundMessage] = []
    db = ctx.db
    with db.transaction():
        for event in sorted(inbound, key=lambda e: e.timestamp_ms):
            conversation = conversations.open_conversation(db, event.channel, event.sender)
            stored = messages.add_inbound(
                db,
                conversation.id,
                event.channel,
                event.text,
                event.external_id,
                provider_ts=event.timestamp_ms,
                kind="text" if event.has_text else event.kind,
            )
            if stored is None:
                continue
            fresh.append(InboundMessage.of(stored))
            if event.unreadable:
                unsupported.record(
                    db,
                    UnsupportedEvent(
                        event.channel,
                        event.external_id,
                        event.kind,
                        event.unreadable,
                        event.sender,
                        conversation.id,
                        stored.id,
                        event.timestamp_ms,
                    ),
                )
        for notice in notices:
            # A person's notice belongs to their conversation (so deleting them deletes it).
            conversation_id = (
                conversations.open_conversation(db, notice.channel, notice.sender).id
                if notice.sender
                else None
            )
            unsupported.record(
                db,
                UnsupportedEvent(
                    notice.channel,
                    notice.external_id,
                    notice.kind,
                    notice.reason,
                    notice.sender,
                    conversation_id,
                    provider_ts=notice.timestamp_ms,
                ),
            )
        for status in statuses:
            outbox.record_status(
                db,
                status.channel,
                status.provider_message_id,
                status.status,
                status.timestamp_ms,
                status.error_code,
                status.error_title,
            )
    return fresh

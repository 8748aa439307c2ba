"""WhatsApp and Instagram webhooks.

GET answers Meta's verify handshake. POST checks `X-Hub-Signature-256` against the raw body,
reads every message and status of the batch, commits them (duplicates ignored by the store's
unique (channel, external id)) and only then answers 200, at once: no model call happens on
the request path. Only a bad signature, a body that is not JSON (nested deeper than the JSON
reader goes, too) or the wrong `object` is a 4xx: what the assistant cannot read (and
reactions, edits, deletions, items Meta never sends) is recorded for the owner
(`store/unsupported.py`), never a reason to refuse the batch.

Each item is committed on its own, so a bug met with one item (reading or storing it) costs
only that item: it is logged with its traceback (never its data), counted in the answer's
`errors` and recorded as an `error` for the owner, and the batch still gets its 200. A store
that cannot write (busy, full, read-only, unreachable) answers 503, and one unable to record
even the error 500, so that Meta delivers the batch again.
Drills and tests stand in for those faults with failpoints (`sales/failpoints.py`), armed for
one item by its id: `webhook.read` (reading it, in `meta/`), `webhook.store` (storing it) and
`webhook.record` (recording it as an `error`), e.g. "webhook.store@wamid.x:BusyError=1".
The conversation actor hears of new rows through a notice; if its inbox is full the rows wait
in the store, where the actor's sweep finds them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from quart import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from actors.messages import InboundMessage
from sales.channels import MESSAGING
from sales.failpoints import Failpoints
from store import conversations, messages, outbox, unsupported
from store.errors import ConstraintError, DataError, StoreError
from store.unsupported import UnsupportedEvent

from .context import IngressContext
from .meta import (
    FAILED,
    SIGNATURE_HEADER,
    InboundEvent,
    Item,
    Notice,
    PayloadError,
    StatusEvent,
    WebhookBatch,
    item_id,
    parse_instagram,
    parse_whatsapp,
    signature_valid,
)
from .responses import error_response, json_problem, json_response, loads_json

log = logging.getLogger("ingress.webhooks")

Parser = Callable[[Any, Failpoints], WebhookBatch]


def webhook_path(channel: str) -> str:
    return f"/api/{channel}/webhook"


WEBHOOK_PATHS = frozenset(webhook_path(channel) for channel in MESSAGING)


def create_webhooks_blueprint(ctx: IngressContext) -> Blueprint:
    bp = Blueprint("webhooks", __name__)
    settings = ctx.settings

    def instagram(payload: Any, failpoints: Failpoints) -> WebhookBatch:
        return parse_instagram(payload, settings.instagram_account_id, failpoints)

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
            batch = parse(loads_json(raw), ctx.failpoints)
        except (ValueError, RecursionError) as exc:  # PayloadError is a ValueError too
            reason = str(exc) if isinstance(exc, PayloadError) else json_problem(exc)
            return error_response(400, "Webhook inválido", [{"campo": "body", "mensaje": reason}])
        for problem in batch.problems:
            log.warning("%s webhook: %s (the rest of the batch is read)", channel, problem)
        for error in batch.errors:
            _log_bug(channel, f"reading {error.where}", error.error)
        stored = store_batch(ctx, batch.inbound, batch.statuses, batch.notices)
        for notice in stored.fresh:
            try:
                ctx.inbound_messages.send_nowait(notice)
            except trio.WouldBlock:
                break  # the rows are committed; the conversation actor's sweep finds them
        return json_response(
            {
                "success": True,
                "received": len(batch.inbound),
                "statuses": len(batch.statuses),
                "notices": len(batch.notices),
                "rejected": batch.rejected,
                "errors": len(batch.errors) + stored.errors,
            }
        )

    receive.__name__ = f"{channel}_receive"
    return receive


@dataclass
class StoredBatch:
    """What `store_batch` did: notices for the conversation actor about new rows, and how many
    items failed (each logged and recorded as an `error`)."""

    fresh: list[InboundMessage] = field(default_factory=list)
    errors: int = 0


def store_batch(
    ctx: IngressContext,
    inbound: Sequence[InboundEvent],
    statuses: Sequence[StatusEvent],
    notices: Sequence[Notice] = (),
) -> StoredBatch:
    """Commit a webhook's messages (in Meta's order), notices and receipts, each in a
    transaction of its own (so call it outside one): an item that fails is recorded as an
    `error` and its neighbours are stored. Raises only when even that record fails."""
    result = StoredBatch()
    items: list[Item] = [*sorted(inbound, key=lambda e: e.timestamp_ms), *notices, *statuses]
    for item in items:
        try:
            with ctx.db.transaction():
                stored = _store_item(ctx, item)
        except Exception as exc:
            if _store_failure(exc):
                raise
            _record_failure(ctx, item, exc)
            result.errors += 1
            continue
        if stored is not None:
            result.fresh.append(InboundMessage.of(stored))
    return result


def _store_item(ctx: IngressContext, item: Item) -> messages.StoredMessage | None:
    """One item's rows; the stored message when it is a new one."""
    db = ctx.db
    ctx.failpoints.hit("webhook.store", item_id(item))
    if isinstance(item, StatusEvent):
        outbox.record_status(
            db,
            item.channel,
            item.provider_message_id,
            item.status,
            item.timestamp_ms,
            item.error_code,
            item.error_title,
        )
        return None
    # A person's message or notice belongs to their conversation (deleting them deletes it).
    conversation_id = (
        conversations.open_conversation(db, item.channel, item.sender).id if item.sender else None
    )
    if isinstance(item, Notice):
        unsupported.record(
            db,
            UnsupportedEvent(
                item.channel,
                item.external_id,
                item.kind,
                item.reason,
                item.sender,
                conversation_id,
                provider_ts=item.timestamp_ms,
            ),
        )
        return None
    assert conversation_id is not None
    stored = messages.add_inbound(
        db,
        conversation_id,
        item.channel,
        item.text,
        item.external_id,
        provider_ts=item.timestamp_ms,
        kind="text" if item.has_text else item.kind,
    )
    if stored is not None and item.unreadable:
        unsupported.record(
            db,
            UnsupportedEvent(
                item.channel,
                item.external_id,
                item.kind,
                item.unreadable,
                item.sender,
                conversation_id,
                stored.id,
                item.timestamp_ms,
            ),
        )
    return stored


def _store_failure(exc: Exception) -> bool:
    """The store cannot write now (busy, locked, full, read-only, I/O): never one item's fault,
    so the batch gets a 500 and Meta delivers it again. A constraint or a value the database
    refuses is the item's (a bug of ours, or a value no check foresaw)."""
    return isinstance(exc, StoreError) and not isinstance(exc, (ConstraintError, DataError))


def _record_failure(ctx: IngressContext, item: Item, exc: Exception) -> None:
    """Log and record an item that could not be stored: a bug of ours, or a value no check
    foresaw. If the store cannot take even this record, it is the store that fails: the
    original error goes up, the batch gets a 500 and Meta delivers it again."""
    _log_bug(item.channel, f"storing an item ({type(item).__name__})", exc)
    # Stable across redeliveries, and computed from nothing that can fail to encode.
    digest = hashlib.sha256(repr(item).encode("utf-8", "backslashreplace")).hexdigest()[:32]
    reason = f"error interno al guardar este elemento ({type(exc).__name__})"
    try:
        with ctx.db.transaction():
            ctx.failpoints.hit("webhook.record", item_id(item))
            unsupported.record(
                ctx.db, UnsupportedEvent(item.channel, f"sha256:{digest}", FAILED, reason)
            )
    except Exception as again:
        raise exc from again


def _log_bug(channel: str, doing: str, exc: BaseException) -> None:
    """The traceback's frames and the exception's type, never its message: that may quote
    what a person wrote."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "%s webhook: %s %s; the item is recorded as an error, the rest of the batch is stored\n%s",
        channel,
        type(exc).__name__,
        doing,
        frames,
    )

"""WhatsApp Cloud API webhooks: every entry, change, message, status and notice."""

from __future__ import annotations

from functools import partial
from typing import Any

from sales.failpoints import Failpoints

from .shapes import (
    MEDIA_LABELS,
    REJECTED,
    UNSUPPORTED_CHANGES,
    InboundEvent,
    Notice,
    PayloadError,
    StatusEvent,
    WebhookBatch,
)
from .values import (
    _clip,
    _edited,
    _envelope,
    _error_code,
    _guarded,
    _identifier,
    _inbound,
    _items,
    _kind,
    _meta_errors,
    _ms,
    _obj,
    _optional,
    _reaction,
    _Reading,
    _rejected,
    _required,
    _string,
    derived_id,
    sanitize,
)

# --- WhatsApp Cloud API ---------------------------------------------------------------------


def parse_whatsapp(payload: Any, failpoints: Failpoints | None = None) -> WebhookBatch:
    """`failpoints` are for drills and tests (`webhook.read`)."""
    failpoints = Failpoints() if failpoints is None else failpoints
    body = _envelope(sanitize(payload), ("whatsapp_business_account",))
    batch = WebhookBatch()
    for e, entry in enumerate(_items(body, "entry", "entry", batch)):
        if not isinstance(entry, dict):
            batch.problems.append(f"entry[{e}] debe ser un objeto")
            continue
        for c, change in enumerate(_items(entry, "changes", f"entry[{e}].changes", batch)):
            where = f"entry[{e}].changes[{c}]"
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                batch.problems.append(f"{where}.value debe ser un objeto")
                continue
            _whatsapp_value(value, where, batch, failpoints)
    return batch


def _whatsapp_value(
    value: dict[str, Any], where: str, batch: WebhookBatch, failpoints: Failpoints
) -> None:
    contacts = [c for c in _items(value, "contacts", f"{where}.contacts", batch) if c]
    messages = _items(value, "messages", f"{where}.messages", batch)
    for m, message in enumerate(messages):
        at = f"{where}.messages[{m}]"
        read = partial(_whatsapp_message, message, contacts, value.get("errors"), at)
        _guarded(batch, "whatsapp", message, at, read, failpoints)
    for s, status in enumerate(_items(value, "statuses", f"{where}.statuses", batch)):
        at = f"{where}.statuses[{s}]"
        receipt = partial(_whatsapp_status, status, at)
        _guarded(batch, "whatsapp", status, at, receipt, failpoints)
    if not messages and (errors := _meta_errors(value.get("errors"))):
        batch.problems.append(f"{where}: {errors}")  # about the account, not a person


def _whatsapp_sender(message: dict[str, Any], contacts: list[Any], wrong: list[str]) -> str | None:
    """The phone-based `from`, else Meta's business-scoped user id (a person with a username
    may come without a phone), else the only contact's. Both are verified identities."""
    for key in ("from", "from_user_id"):
        if message.get(key) not in (None, ""):
            return _required(_identifier, message[key], "remitente", wrong)
    if len(contacts) == 1 and isinstance(contacts[0], dict):
        for key in ("wa_id", "user_id"):
            if sender := _optional(_identifier, contacts[0].get(key)):
                return sender
    wrong.append("falta remitente")
    return None


def _whatsapp_message(
    message: Any, contacts: list[Any], value_errors: Any, where: str
) -> InboundEvent | Notice:
    if not isinstance(message, dict):
        return _rejected("whatsapp", message, f"mensaje malformado: {where} no es un objeto")
    wrong: list[str] = []
    try:
        kind = _kind(message.get("type"), "tipo") or "unknown"
    except PayloadError as exc:
        kind = "unknown"
        wrong.append(str(exc))
    sender = _whatsapp_sender(message, contacts, wrong)
    external_id = _required(_identifier, message.get("id"), "id", wrong)
    ts = _required(_ms, message.get("timestamp"), "fecha", wrong)
    try:
        reading: _Reading | None = _whatsapp_reading(kind, message, value_errors, where)
    except PayloadError as exc:
        reading = None
        wrong.append(str(exc))
    if reading is not None and not reading.answered:  # a notice needs no more than it has
        system = message.get("system")
        if sender is None and isinstance(system, dict):  # a new BSUID: the old one is theirs
            sender = _optional(_identifier, system.get("previous_user_id"))
        why = reading.unreadable or kind
        return Notice("whatsapp", sender, external_id or derived_id(message), ts, kind, why)
    if reading is None or wrong or sender is None or external_id is None or ts is None:
        reason = _clip("mensaje malformado: " + "; ".join(wrong))
        return Notice("whatsapp", sender, external_id or derived_id(message), ts, REJECTED, reason)
    return _inbound("whatsapp", sender, external_id, ts, kind, reading)


def _whatsapp_reading(
    kind: str, message: dict[str, Any], value_errors: Any, where: str
) -> _Reading:
    errors = _meta_errors(message.get("errors")) or _meta_errors(value_errors)
    content = message.get(kind)
    if kind == "text":
        body = _obj(content, f"{where}.text").get("body")
        if not isinstance(body, str):
            raise PayloadError(f"{where}.text.body debe ser texto")
        return _Reading(body)
    if kind == "interactive":
        return _interactive(content, errors, where)
    if kind == "button":
        return _Reading(_obj(content, f"{where}.button").get("text"))
    if kind in ("image", "video", "document") and content is not None:
        return _Reading(_obj(content, f"{where}.{kind}").get("caption"), errors)
    if kind == "order":
        return _Reading(_order(_obj(content, f"{where}.order")))
    if kind in ("unsupported", "unknown", "errors"):
        change = content.get("type") if isinstance(content, dict) else None
        if change in UNSUPPORTED_CHANGES:
            return _Reading(None, UNSUPPORTED_CHANGES[change], answered=False)
        what = f"mensaje no soportado «{change}»" if change else "mensaje no soportado"
        return _Reading(None, f"{what}; {errors}" if errors else what)
    if kind in ("reaction", "system", "request_welcome", "ephemeral", "revoke", "edit"):
        return _Reading(None, _whatsapp_notice(kind, content), answered=False)
    if kind not in MEDIA_LABELS:
        return _Reading(
            None, f"tipo de mensaje desconocido «{kind}»" + (f"; {errors}" if errors else "")
        )
    return _Reading(None, errors)


def _interactive(content: Any, errors: str | None, where: str) -> _Reading:
    if content is None:  # what Meta sends when it could not render the reply
        return _Reading(None, errors or "respuesta interactiva que WhatsApp no entregó")
    interactive = _obj(content, f"{where}.interactive")
    for key in ("button_reply", "list_reply"):
        if key in interactive:
            return _Reading(_obj(interactive[key], f"{where}.interactive.{key}").get("title"))
    if "nfm_reply" in interactive:
        return _Reading(None, "respuesta de un formulario de WhatsApp (Flow)")
    return _Reading(None, f"respuesta interactiva «{interactive.get('type')}»")


def _order(order: dict[str, Any]) -> str:
    """A catalogue order in words the assistant can answer."""
    items = []
    for item in order.get("product_items") or ():
        if isinstance(item, dict):
            price = (
                f" a {item['item_price']} {item.get('currency', '')}".rstrip()
                if "item_price" in item
                else ""
            )
            items.append(
                f"{item.get('quantity', 1)} × {item.get('product_retailer_id', '?')}{price}"
            )
    note = order.get("text")
    return "[pedido] " + "; ".join(items) + (f". {note}" if isinstance(note, str) and note else "")


def _whatsapp_notice(kind: str, content: Any) -> str:
    content = content if isinstance(content, dict) else {}
    if kind == "reaction":
        return _reaction(content.get("emoji"))
    if kind == "system":
        return _clip(f"aviso de WhatsApp: {content.get('body') or content.get('type') or '?'}")
    if kind == "request_welcome":
        return "abrió el chat por primera vez"
    if kind == "ephemeral":
        return "mensaje temporal: WhatsApp no entrega su contenido"
    if kind == "revoke":
        return "borró un mensaje"
    edited = content.get("message")
    body = edited.get("text") if isinstance(edited, dict) else None
    return _edited(body.get("body") if isinstance(body, dict) else None)


def _whatsapp_status(status: Any, where: str) -> StatusEvent | Notice:
    """A receipt needs its id and state; an absurd time or error is left out of it."""
    if not isinstance(status, dict):
        return _rejected(
            "whatsapp", status, f"recibo de entrega malformado: {where} no es un objeto"
        )
    wrong: list[str] = []
    provider_id = _required(_identifier, status.get("id"), "id", wrong)
    state = _required(_kind, status.get("status"), "status", wrong)
    if provider_id is None or state is None:
        return _rejected("whatsapp", status, "recibo de entrega malformado: " + "; ".join(wrong))
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    title = _string(first.get("title")) or _string(first.get("message"))
    return StatusEvent(
        channel="whatsapp",
        provider_message_id=provider_id,
        status=state,
        timestamp_ms=_optional(_ms, status.get("timestamp")),
        error_code=_error_code(first.get("code")),
        error_title=_clip(title) if title else None,
    )

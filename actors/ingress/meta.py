"""Meta webhooks: signature check and the payload shapes of WhatsApp Cloud API and Instagram
Messaging, read whole (every entry, change, message and status; never only the first).

Parsing is pure: a payload in, a `WebhookBatch` out. Only a body that is not Meta's envelope
(not an object, the wrong `object`) raises `PayloadError`. Everything inside is read one item
at a time: a message the assistant cannot read is still an `InboundEvent` (with the reason,
for the owner); reactions, edits, deletions and system notices are `Notice`s (recorded, never
answered); a malformed item becomes a `Notice` or a logged problem. So one odd message never
turns the batch into a 4xx that Meta retries for days."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
REASON_CHARS = 200  # how much of an edited text or a system notice the owner's list keeps

# What a non-text message becomes in the conversation when it has no caption.
MEDIA_LABELS = {
    "image": "[imagen]",
    "audio": "[audio]",
    "video": "[video]",
    "document": "[documento]",
    "sticker": "[sticker]",
    "location": "[ubicación]",
    "contacts": "[contacto]",
    "unsupported": "[mensaje no soportado]",
    "file": "[archivo]",
    "share": "[publicación compartida]",
    "story_mention": "[mención en historia]",
    "ig_reel": "[reel]",
    "reel": "[reel]",
    "interactive": "[respuesta interactiva]",
    "unknown": "[mensaje no soportado]",
}
# Types WhatsApp marks `unsupported` that change an earlier message instead of saying
# something new: recorded, never answered with "please write".
UNSUPPORTED_CHANGES = {
    "edit": "editó un mensaje",
    "revoke": "borró un mensaje",
    "pin": "fijó un mensaje",
    "poll_update": "votó en una encuesta",
    "keep_in_chat": "guardó un mensaje temporal",
}


class PayloadError(ValueError):
    """The webhook body (or one item of it) is not the shape Meta sends."""


@dataclass(frozen=True)
class InboundEvent:
    """A user's message. `text` is what the assistant reads; `kind` is what it was;
    `unreadable` says why the assistant cannot read it (the owner sees it listed)."""

    channel: str
    sender: str
    external_id: str
    timestamp_ms: int
    kind: str
    text: str
    has_text: bool
    unreadable: str | None = None


@dataclass(frozen=True)
class Notice:
    """Something a person did that is recorded for the owner and never answered: a reaction,
    an edit, a deletion, a system notice, or a message too malformed to keep."""

    channel: str
    sender: str | None
    external_id: str
    timestamp_ms: int | None
    kind: str
    reason: str


@dataclass(frozen=True)
class StatusEvent:
    """A delivery receipt for something we sent."""

    channel: str
    provider_message_id: str
    status: str
    timestamp_ms: int | None
    error_code: int | None = None
    error_title: str | None = None


@dataclass
class WebhookBatch:
    """Everything one webhook body carried; `problems` are malformed parts that are not a
    person's message (logged, never a reason to refuse the batch)."""

    inbound: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def signature_valid(secret: str, raw_body: bytes, header: str) -> bool:
    """`sha256=` + hex HMAC-SHA256 of the raw body, compared in constant time."""
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def _envelope(payload: Any, objects: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("object") not in objects:
        raise PayloadError(f'"object" debe ser "{objects[0]}"')
    return payload


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} debe ser un objeto")
    return value


def _items(container: dict[str, Any], key: str, where: str, batch: WebhookBatch) -> list[Any]:
    """`container[key]` as a list; anything else is a problem and reads as empty."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        batch.problems.append(f"{where} debe ser una lista")
        return []
    return value


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and value != "" else None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _ms(value: Any) -> int | None:
    """Meta's times: seconds on WhatsApp, milliseconds on Instagram, as a number or text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number * 1000 if 0 < number < 10**11 else number if number > 0 else None


def derived_id(item: Any) -> str:
    """A stable id for something Meta sent without one, so a redelivery is recorded once."""
    canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _meta_errors(errors: Any) -> str | None:
    """Meta's own words on why it could not deliver a message: title, details, code."""
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    data = first.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    title = str(first.get("title") or first.get("message") or "").rstrip(".")
    said = ": ".join(dict.fromkeys(str(p) for p in (title, details) if p)) or "error"
    code = first.get("code")
    return _clip(f"Meta: {said}" + (f" (código {code})" if code is not None else ""))


@dataclass(frozen=True)
class _Reading:
    """What a message says: text to answer, or why it cannot be read, or (answered=False)
    a notice that is only recorded."""

    text: str | None = None
    unreadable: str | None = None
    answered: bool = True


def _reaction(emoji: Any) -> str:
    return f"reaccionó {emoji} a un mensaje" if emoji else "quitó su reacción a un mensaje"


def _edited(text: Any) -> str:
    return _clip(f"editó un mensaje: «{text}»") if isinstance(text, str) else "editó un mensaje"


# --- WhatsApp Cloud API ---------------------------------------------------------------------


def parse_whatsapp(payload: Any) -> WebhookBatch:
    body = _envelope(payload, ("whatsapp_business_account",))
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
            _whatsapp_value(value, where, batch)
    return batch


def _whatsapp_value(value: dict[str, Any], where: str, batch: WebhookBatch) -> None:
    contacts = [c for c in _items(value, "contacts", f"{where}.contacts", batch) if c]
    messages = _items(value, "messages", f"{where}.messages", batch)
    for m, message in enumerate(messages):
        batch_item = _whatsapp_message(
            message, contacts, value.get("errors"), f"{where}.messages[{m}]"
        )
        if isinstance(batch_item, InboundEvent):
            batch.inbound.append(batch_item)
        else:
            batch.notices.append(batch_item)
    for s, status in enumerate(_items(value, "statuses", f"{where}.statuses", batch)):
        try:
            batch.statuses.append(_whatsapp_status(status, f"{where}.statuses[{s}]"))
        except PayloadError as exc:
            batch.problems.append(str(exc))
    if not messages and (errors := _meta_errors(value.get("errors"))):
        batch.problems.append(f"{where}: {errors}")  # about the account, not a person


def _whatsapp_sender(message: dict[str, Any], contacts: list[Any]) -> str | None:
    """The phone-based `from`, else Meta's business-scoped user id (a person with a username
    may come without a phone), else the only contact's. Both are verified identities."""
    for key in ("from", "from_user_id"):
        if sender := _text(message.get(key)):
            return sender
    if len(contacts) == 1 and isinstance(contacts[0], dict):
        for key in ("wa_id", "user_id"):
            if sender := _text(contacts[0].get(key)):
                return sender
    return None


def _whatsapp_message(
    message: Any, contacts: list[Any], value_errors: Any, where: str
) -> InboundEvent | Notice:
    if not isinstance(message, dict):
        why = f"mensaje malformado: {where} no es un objeto"
        return Notice("whatsapp", None, derived_id(message), None, "malformed", why)
    kind = _text(message.get("type")) or "unknown"
    sender = _whatsapp_sender(message, contacts)
    external_id = _text(message.get("id"))
    ts = _ms(message.get("timestamp"))
    try:
        reading = _whatsapp_reading(kind, message, value_errors, where)
    except PayloadError as exc:
        reading, wrong = None, [str(exc)]
    else:
        wrong = []
    if reading is not None and not reading.answered:  # a notice needs no more than it has
        system = message.get("system")
        if sender is None and isinstance(system, dict):  # a new BSUID: the old one is theirs
            sender = _text(system.get("previous_user_id"))
        why = reading.unreadable or kind
        return Notice("whatsapp", sender, external_id or derived_id(message), ts, kind, why)
    for name, value in (("remitente", sender), ("id", external_id), ("fecha", ts)):
        if not value:
            wrong.insert(0, f"falta {name}")
    if reading is None or not sender or not external_id or not ts:
        reason = _clip("mensaje malformado: " + "; ".join(wrong))
        return Notice("whatsapp", sender, external_id or derived_id(message), ts, kind, reason)
    return _inbound("whatsapp", sender, external_id, ts, kind, reading)


def _inbound(
    channel: str, sender: str, external_id: str, ts: int, kind: str, reading: _Reading
) -> InboundEvent:
    text = reading.text.strip() if isinstance(reading.text, str) else ""
    label = MEDIA_LABELS.get(kind, f"[{kind}]")
    unreadable = None if text else reading.unreadable or f"{label.strip('[]')} sin texto"
    return InboundEvent(
        channel, sender, external_id, ts, kind, text or label, bool(text), unreadable
    )


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


def _whatsapp_status(status: Any, where: str) -> StatusEvent:
    status = _obj(status, where)
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    provider_id, state = _text(status.get("id")), _text(status.get("status"))
    if not provider_id or not state:
        raise PayloadError(f"{where}: falta id o status")
    return StatusEvent(
        channel="whatsapp",
        provider_message_id=provider_id,
        status=state,
        timestamp_ms=_ms(status.get("timestamp")),
        error_code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        error_title=first.get("title") or first.get("message"),
    )


# --- Instagram Messaging --------------------------------------------------------------------


def parse_instagram(payload: Any, account_id: str | None) -> WebhookBatch:
    """Messages from users; echoes of our own sends are skipped; reactions, edits, deletions
    and referrals are notices; read events become receipts."""
    body = _envelope(payload, ("instagram", "page"))
    batch = WebhookBatch()
    for e, entry in enumerate(_items(body, "entry", "entry", batch)):
        if not isinstance(entry, dict):
            batch.problems.append(f"entry[{e}] debe ser un objeto")
            continue
        ours = str(entry.get("id") or account_id or "")
        time = _ms(entry.get("time"))
        for i, event in enumerate(_items(entry, "messaging", f"entry[{e}].messaging", batch)):
            _instagram_event(event, ours, time, f"entry[{e}].messaging[{i}]", batch)
    return batch


def _instagram_event(
    event: Any, ours: str, entry_time: int | None, where: str, batch: WebhookBatch
) -> None:
    if not isinstance(event, dict):
        batch.notices.append(_ig_malformed(event, None, None, f"{where} no es un objeto"))
        return
    who = event.get("sender")
    sender = _text(who.get("id")) if isinstance(who, dict) else None
    ts = _ms(event.get("timestamp")) or entry_time
    if isinstance(read := event.get("read"), dict):
        if mid := _text(read.get("mid")):
            batch.statuses.append(StatusEvent("instagram", mid, "read", ts))
        return
    message = event.get("message", event.get("postback"))  # a postback reads like a message
    if (isinstance(message, dict) and message.get("is_echo")) or (sender and sender == ours):
        return  # our own send (or the owner's, from the Instagram app) coming back
    notice = next((key for key in _IG_NOTICES if isinstance(event.get(key), dict)), None)
    if message is None and notice is None:
        return  # seen, opt-ins, handover and fields we do not use
    if sender is None or ts is None:
        batch.notices.append(_ig_malformed(event, sender, ts, f"{where}: falta remitente o fecha"))
    elif message is None:
        assert notice is not None
        batch.notices.append(_IG_NOTICES[notice](event[notice], sender, ts))
    else:
        try:
            item = _instagram_message(_obj(message, f"{where}.message"), sender, ts, where)
        except PayloadError as exc:
            item = _ig_malformed(event, sender, ts, str(exc))
        if isinstance(item, InboundEvent):
            batch.inbound.append(item)
        else:
            batch.notices.append(item)


def _ig_malformed(event: Any, sender: str | None, ts: int | None, why: str) -> Notice:
    return Notice(
        "instagram", sender, derived_id(event), ts, "malformed", _clip(f"mensaje malformado: {why}")
    )


def _ig_reaction(reaction: dict[str, Any], sender: str, ts: int) -> Notice:
    emoji = reaction.get("emoji") if reaction.get("action") != "unreact" else None
    mid = _text(reaction.get("mid")) or derived_id(reaction)
    return Notice("instagram", sender, f"{mid}#reaction@{ts}", ts, "reaction", _reaction(emoji))


def _ig_edit(edit: dict[str, Any], sender: str, ts: int) -> Notice:
    mid = _text(edit.get("mid")) or derived_id(edit)
    return Notice(
        "instagram",
        sender,
        f"{mid}#edit{edit.get('num_edit', '')}",
        ts,
        "edit",
        _edited(edit.get("text")),
    )


def _ig_referral(referral: dict[str, Any], sender: str, ts: int) -> Notice:
    source = " ".join(str(referral[k]) for k in ("source", "ref") if referral.get(k))
    reason = "abrió el chat desde un enlace o anuncio" + (f" ({source})" if source else "")
    return Notice("instagram", sender, f"referral:{sender}@{ts}", ts, "referral", _clip(reason))


def _instagram_message(
    message: dict[str, Any], sender: str, ts: int, where: str
) -> InboundEvent | Notice:
    mid = _text(message.get("mid")) or derived_id(message)
    if message.get("is_deleted"):
        return Notice("instagram", sender, mid, ts, "deleted", "borró un mensaje")
    if message.get("is_unsupported"):
        return _inbound(
            "instagram",
            sender,
            mid,
            ts,
            "unsupported",
            _Reading(None, "mensaje no soportado por Instagram"),
        )
    text = message.get("text") or message.get("title")  # a postback's button title
    if text and not isinstance(text, str):
        raise PayloadError(f"{where}.message.text debe ser texto")
    kind = "text"
    if not text:
        attachments = message.get("attachments")
        if attachments is not None and not isinstance(attachments, list):
            raise PayloadError(f"{where}.message.attachments debe ser una lista")
        first = attachments[0] if attachments and isinstance(attachments[0], dict) else {}
        kind = _text(first.get("type")) or "unsupported"
    return _inbound("instagram", sender, mid, ts, kind, _Reading(text))


_IG_NOTICES = {"reaction": _ig_reaction, "message_edit": _ig_edit, "referral": _ig_referral}

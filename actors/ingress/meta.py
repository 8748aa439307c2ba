"""Meta webhooks: signature check and the payload shapes of WhatsApp Cloud API and Instagram
Messaging, read whole (every entry, change, message and status; never only the first).

Parsing is pure: a payload in, typed events out, `PayloadError` naming what is malformed."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"

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
}


# Reactions and system notices (a number changed...) are not user input to answer.
NOT_ANSWERED = frozenset({"reaction", "system", "ephemeral", "request_welcome"})


class PayloadError(ValueError):
    """The webhook body is not the shape Meta sends."""


@dataclass(frozen=True)
class InboundEvent:
    """A user's message. `text` is what the assistant reads; `kind` is what it was."""

    channel: str
    sender: str
    external_id: str
    timestamp_ms: int
    kind: str
    text: str
    has_text: bool


@dataclass(frozen=True)
class StatusEvent:
    """A delivery receipt for something we sent."""

    channel: str
    provider_message_id: str
    status: str
    timestamp_ms: int | None
    error_code: int | None = None
    error_title: str | None = None


def signature_valid(secret: str, raw_body: bytes, header: str) -> bool:
    """`sha256=` + hex HMAC-SHA256 of the raw body, compared in constant time."""
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} debe ser un objeto")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where} debe ser una lista")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str | int) or value == "":
        raise PayloadError(f"{where} falta o no es texto")
    return str(value)


def _seconds_to_ms(value: Any, where: str) -> int:
    try:
        return int(value) * 1000
    except (TypeError, ValueError):
        raise PayloadError(f"{where} no es una marca de tiempo") from None


def parse_whatsapp(payload: Any) -> tuple[list[InboundEvent], list[StatusEvent]]:
    body = _obj(payload, "el cuerpo")
    if body.get("object") != "whatsapp_business_account":
        raise PayloadError('"object" debe ser "whatsapp_business_account"')
    messages: list[InboundEvent] = []
    statuses: list[StatusEvent] = []
    for e, entry in enumerate(_list(body.get("entry"), "entry")):
        for c, change in enumerate(
            _list(_obj(entry, f"entry[{e}]").get("changes"), f"entry[{e}].changes")
        ):
            where = f"entry[{e}].changes[{c}]"
            value = _obj(_obj(change, where).get("value"), f"{where}.value")
            for m, message in enumerate(_list(value.get("messages"), f"{where}.value.messages")):
                message = _obj(message, f"{where}.messages[{m}]")
                if message.get("type") in NOT_ANSWERED:
                    continue
                messages.append(_whatsapp_message(message, f"{where}.messages[{m}]"))
            for s, status in enumerate(_list(value.get("statuses"), f"{where}.value.statuses")):
                statuses.append(
                    _whatsapp_status(
                        _obj(status, f"{where}.statuses[{s}]"), f"{where}.statuses[{s}]"
                    )
                )
    return messages, statuses


def _whatsapp_message(message: dict[str, Any], where: str) -> InboundEvent:
    kind = _str(message.get("type"), f"{where}.type")
    text: Any = None
    if kind == "text":
        text = _obj(message.get("text"), f"{where}.text").get("body")
        if not isinstance(text, str):
            raise PayloadError(f"{where}.text.body debe ser texto")
    elif kind == "interactive":
        interactive = _obj(message.get("interactive"), f"{where}.interactive")
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        if reply is not None:
            text = _obj(reply, f"{where}.interactive.reply").get("title")
    elif kind == "button":
        text = _obj(message.get("button"), f"{where}.button").get("text")
    elif kind in ("image", "video", "document"):
        media = message.get(kind)
        if media is not None:
            text = _obj(media, f"{where}.{kind}").get("caption")
    has_text = isinstance(text, str) and text.strip() != ""
    return InboundEvent(
        channel="whatsapp",
        sender=_str(message.get("from"), f"{where}.from"),
        external_id=_str(message.get("id"), f"{where}.id"),
        timestamp_ms=_seconds_to_ms(message.get("timestamp"), f"{where}.timestamp"),
        kind=kind,
        text=text.strip() if has_text and text else MEDIA_LABELS.get(kind, f"[{kind}]"),
        has_text=has_text,
    )


def _whatsapp_status(status: dict[str, Any], where: str) -> StatusEvent:
    errors = _list(status.get("errors"), f"{where}.errors")
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    return StatusEvent(
        channel="whatsapp",
        provider_message_id=_str(status.get("id"), f"{where}.id"),
        status=_str(status.get("status"), f"{where}.status"),
        timestamp_ms=_seconds_to_ms(status.get("timestamp", 0), f"{where}.timestamp"),
        error_code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        error_title=first.get("title") or first.get("message"),
    )


def parse_instagram(
    payload: Any, account_id: str | None
) -> tuple[list[InboundEvent], list[StatusEvent]]:
    """Messages from users; echoes of our own sends, deletions, unsupported messages,
    reactions and read events are never answered (reads become receipts)."""
    body = _obj(payload, "el cuerpo")
    if body.get("object") not in ("instagram", "page"):
        raise PayloadError('"object" debe ser "instagram"')
    messages: list[InboundEvent] = []
    statuses: list[StatusEvent] = []
    for e, entry in enumerate(_list(body.get("entry"), "entry")):
        entry = _obj(entry, f"entry[{e}]")
        ours = str(entry.get("id") or account_id or "")
        for i, event in enumerate(_list(entry.get("messaging"), f"entry[{e}].messaging")):
            where = f"entry[{e}].messaging[{i}]"
            event = _obj(event, where)
            sender = _str(
                _obj(event.get("sender"), f"{where}.sender").get("id"), f"{where}.sender.id"
            )
            timestamp = event.get("timestamp")
            ts = int(timestamp) if isinstance(timestamp, int) else None
            if "read" in event:
                mid = _obj(event["read"], f"{where}.read").get("mid")
                if mid:
                    statuses.append(StatusEvent("instagram", str(mid), "read", ts))
                continue
            message = event.get("message") or event.get("postback")
            if message is None:
                continue  # reactions, referrals, seen events: recorded by Meta, not answered
            message = _obj(message, f"{where}.message")
            if message.get("is_echo") or sender == ours:
                continue  # our own send coming back
            if message.get("is_deleted") or message.get("is_unsupported"):
                continue  # nothing to read or answer
            if ts is None:
                raise PayloadError(f"{where}.timestamp falta")
            messages.append(_instagram_message(message, sender, ts, where))
    return messages, statuses


def _instagram_message(message: dict[str, Any], sender: str, ts: int, where: str) -> InboundEvent:
    mid = _str(message.get("mid"), f"{where}.message.mid")
    text = message.get("text") or message.get("title")
    kind = "text"
    if not text:
        attachments = _list(message.get("attachments"), f"{where}.message.attachments")
        first = attachments[0] if attachments and isinstance(attachments[0], dict) else {}
        kind = str(first.get("type") or "unsupported")
    has_text = isinstance(text, str) and text.strip() != ""
    return InboundEvent(
        channel="instagram",
        sender=sender,
        external_id=mid,
        timestamp_ms=ts,
        kind=kind,
        text=text.strip()
        if has_text and isinstance(text, str)
        else MEDIA_LABELS.get(kind, f"[{kind}]"),
        has_text=has_text,
    )

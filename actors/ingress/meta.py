"""Meta webhooks: signature check and the payload shapes of WhatsApp Cloud API and Instagram
Messaging, read whole (every entry, change, message and status; never only the first).

Parsing is pure: a payload in, a `WebhookBatch` out. Only a body that is not Meta's envelope
(not an object, the wrong `object`) raises `PayloadError`. Everything inside is read and
checked one item at a time: a message the assistant cannot read is still an `InboundEvent`
(with the reason, for the owner); reactions, edits, deletions and system notices are
`Notice`s (recorded, never answered); an item with a shape or a value Meta never sends is a
`Notice` of kind `rejected` with the reason; a bug met while reading one item makes it a
`Notice` of kind `error` (the exception is kept for the log). So one odd item never turns the
batch into an error that Meta retries for days, and never costs its neighbours their place.

What an item must hold (anything else rejects the item, never the batch):
- ids and senders: a string of at most MAX_ID_CHARS printable characters, or a whole number;
- times: a whole number or a string of ASCII digits, seconds or milliseconds, between
  2000 and 2100 (10**30, 1e999, -5, 1.5 and "²" are not times);
- texts: at most MAX_TEXT_CHARS characters.
A receipt's error code (whole, up to 2**31) and time are optional: absurd ones are left out
and the receipt kept. A lone surrogate (`"\\ud83d"`: valid JSON, but no text that can be
stored or sent) becomes U+FFFD, so a text keeps the rest of what the person wrote, while an
id that had one is rejected (two ids must never become one). Nesting deeper than MAX_DEPTH is
cut, so hashing an item cannot exhaust the stack (`sanitize`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

SIGNATURE_HEADER = "X-Hub-Signature-256"
REASON_CHARS = 200  # how much of an edited text or a system notice the owner's list keeps
MAX_ID_CHARS = 512  # Meta's ids (message, user, page) are far shorter
MAX_TEXT_CHARS = 10_000  # more than a person can send (WhatsApp stops at 4096)
MAX_DEPTH = 32  # Meta's payloads nest about ten levels
MAX_DIGITS = 20  # of a whole number Meta sends (ids, times, error codes)
MAX_ERROR_CODE = 2**31 - 1
EARLIEST_SECONDS = 946_684_800  # 2000-01-01 UTC
LATEST_SECONDS = 4_102_444_800  # 2100-01-01 UTC
MS_PER_SECOND = 1000
REJECTED = "rejected"  # the kind of an item that is not what Meta sends
FAILED = "error"  # the kind of an item we failed to read or store (a bug of ours)
TOO_DEEP = "[anidamiento demasiado profundo]"
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")  # message types and receipt states

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
    """Something recorded for the owner and never answered: a reaction, an edit, a deletion,
    a system notice, an item that is not what Meta sends (`rejected`), or one we failed to
    read (`error`)."""

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


Item = InboundEvent | Notice | StatusEvent


@dataclass(frozen=True)
class ReadError:
    """A bug met while reading one item (`where` is its path in the body, never its data)."""

    where: str
    error: Exception


@dataclass
class WebhookBatch:
    """Everything one webhook body carried; `problems` are malformed parts that are not an
    item (logged, never a reason to refuse the batch); `errors` are our bugs, one per item."""

    inbound: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[ReadError] = field(default_factory=list)

    def add(self, item: Item | None) -> None:
        if isinstance(item, InboundEvent):
            self.inbound.append(item)
        elif isinstance(item, StatusEvent):
            self.statuses.append(item)
        elif item is not None:
            self.notices.append(item)

    @property
    def rejected(self) -> int:
        return sum(notice.kind == REJECTED for notice in self.notices)


def signature_valid(secret: str, raw_body: bytes, header: str) -> bool:
    """`sha256=` + hex HMAC-SHA256 of the raw body, compared in constant time."""
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def sanitize(tree: Any) -> Any:
    """A copy of a decoded body that can be stored, hashed and printed: every lone surrogate
    (in keys and values) replaced by U+FFFD, every container nested deeper than MAX_DEPTH by
    TOO_DEEP. Iterative, so the body's own depth cannot exhaust the stack."""
    root = [tree]
    pending: list[tuple[Any, int]] = [(root, 0)]
    while pending:
        container, depth = pending.pop()
        slots = container.items() if isinstance(container, dict) else enumerate(container)
        for slot, value in list(slots):
            if isinstance(value, str):
                container[slot] = _clean(value)
            elif isinstance(value, dict | list):
                if depth >= MAX_DEPTH:
                    container[slot] = TOO_DEEP
                    continue
                copy = (
                    {_clean(key): inner for key, inner in value.items()}
                    if isinstance(value, dict)
                    else list(value)
                )
                container[slot] = copy
                pending.append((copy, depth + 1))
    return root[0]


def _clean(text: str) -> str:
    return text if text.isascii() else _SURROGATE.sub(REPLACEMENT, text)


def derived_id(item: Any) -> str:
    """A stable id for something Meta sent without one, so a redelivery is recorded once."""
    canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --- one value at a time --------------------------------------------------------------------

T = TypeVar("T")


def _identifier(value: Any, name: str) -> str | None:
    """An id or a sender; None when absent, PayloadError when it is not one Meta sends."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**MAX_DIGITS:
        return str(value)
    if (
        isinstance(value, str)
        and len(value) <= MAX_ID_CHARS
        and value.isprintable()
        and value.strip()
        and REPLACEMENT not in value
    ):
        return value
    raise PayloadError(f"{name} inválido")


def _whole(value: Any) -> int | None:
    """A whole number as Meta writes one: a JSON integer or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 10**MAX_DIGITS else None
    if isinstance(value, str) and 0 < len(value) <= MAX_DIGITS and value.isascii():
        return int(value) if value.isdigit() else None
    return None


def _ms(value: Any, name: str) -> int | None:
    """Meta's times: seconds on WhatsApp, milliseconds on Instagram, as a number or text;
    None when absent, PayloadError when it is no time of this century."""
    if value is None or value == "":
        return None
    number = _whole(value)
    if number is not None:
        if EARLIEST_SECONDS <= number < LATEST_SECONDS:
            return number * MS_PER_SECOND
        if EARLIEST_SECONDS * MS_PER_SECOND <= number < LATEST_SECONDS * MS_PER_SECOND:
            return number
    raise PayloadError(f"{name} inválida")


def _kind(value: Any, name: str) -> str | None:
    """A message type or a receipt state: a short lower-case word."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _KIND.fullmatch(value):
        return value
    raise PayloadError(f"{name} inválido")


def _optional(check: Callable[[Any, str], T | None], value: Any) -> T | None:
    """What `check` makes of an optional value; None for an absurd one."""
    try:
        return check(value, "")
    except PayloadError:
        return None


def _required(
    check: Callable[[Any, str], T | None], value: Any, name: str, wrong: list[str]
) -> T | None:
    """What `check` makes of a value the item needs; None and a line in `wrong` if absent or
    absurd."""
    try:
        found = check(value, name)
    except PayloadError as exc:
        wrong.append(str(exc))
        return None
    if found is None:
        wrong.append(f"falta {name}")
    return found


def _error_code(value: Any) -> int | None:
    code = _whole(value)
    return code if code is not None and 0 <= code <= MAX_ERROR_CODE else None


def _string(value: Any) -> str | None:
    """An optional text field (a title, an emoji, a detail): a string or nothing."""
    return value if isinstance(value, str) and value else None


# --- the shape around the items -------------------------------------------------------------


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


def _guarded(
    batch: WebhookBatch, channel: str, item: Any, where: str, read: Callable[[], Item | None]
) -> None:
    """Read one item. A bug met on the way is ours, not Meta's: the item becomes an `error`
    notice (the exception is kept for the log), and its neighbours are read on."""
    try:
        batch.add(read())
    except Exception as exc:
        batch.errors.append(ReadError(where, exc))
        reason = f"error interno al leer este elemento ({type(exc).__name__})"
        batch.add(Notice(channel, None, derived_id(item), None, FAILED, reason))


def _rejected(channel: str, item: Any, reason: str) -> Notice:
    return Notice(channel, None, derived_id(item), None, REJECTED, _clip(reason))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _meta_errors(errors: Any) -> str | None:
    """Meta's own words on why it could not deliver a message: title, details, code."""
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    data = first.get("error_data")
    details = _string(data.get("details")) if isinstance(data, dict) else None
    title = (_string(first.get("title")) or _string(first.get("message")) or "").rstrip(".")
    said = ": ".join(dict.fromkeys(p for p in (title, details) if p)) or "error"
    code = _error_code(first.get("code"))
    return _clip(f"Meta: {said}" + (f" (código {code})" if code is not None else ""))


@dataclass(frozen=True)
class _Reading:
    """What a message says: text to answer, or why it cannot be read, or (answered=False)
    a notice that is only recorded."""

    text: str | None = None
    unreadable: str | None = None
    answered: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.text, str) and len(self.text) > MAX_TEXT_CHARS:
            raise PayloadError(f"texto de más de {MAX_TEXT_CHARS} caracteres")


def _inbound(
    channel: str, sender: str, external_id: str, ts: int, kind: str, reading: _Reading
) -> InboundEvent:
    text = reading.text.strip() if isinstance(reading.text, str) else ""
    label = MEDIA_LABELS.get(kind, f"[{kind}]")
    unreadable = None if text else _clip(reading.unreadable or f"{label.strip('[]')} sin texto")
    return InboundEvent(
        channel, sender, external_id, ts, kind, text or label, bool(text), unreadable
    )


def _reaction(emoji: Any) -> str:
    emoji = _string(emoji)
    return _clip(f"reaccionó {emoji} a un mensaje") if emoji else "quitó su reacción a un mensaje"


def _edited(text: Any) -> str:
    return _clip(f"editó un mensaje: «{text}»") if isinstance(text, str) else "editó un mensaje"


# --- WhatsApp Cloud API ---------------------------------------------------------------------


def parse_whatsapp(payload: Any) -> WebhookBatch:
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
            _whatsapp_value(value, where, batch)
    return batch


def _whatsapp_value(value: dict[str, Any], where: str, batch: WebhookBatch) -> None:
    contacts = [c for c in _items(value, "contacts", f"{where}.contacts", batch) if c]
    messages = _items(value, "messages", f"{where}.messages", batch)
    for m, message in enumerate(messages):
        at = f"{where}.messages[{m}]"
        read = partial(_whatsapp_message, message, contacts, value.get("errors"), at)
        _guarded(batch, "whatsapp", message, at, read)
    for s, status in enumerate(_items(value, "statuses", f"{where}.statuses", batch)):
        at = f"{where}.statuses[{s}]"
        _guarded(batch, "whatsapp", status, at, partial(_whatsapp_status, status, at))
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


# --- Instagram Messaging --------------------------------------------------------------------


def parse_instagram(payload: Any, account_id: str | None) -> WebhookBatch:
    """Messages from users; echoes of our own sends are skipped; reactions, edits, deletions
    and referrals are notices; read events become receipts."""
    body = _envelope(sanitize(payload), ("instagram", "page"))
    batch = WebhookBatch()
    for e, entry in enumerate(_items(body, "entry", "entry", batch)):
        if not isinstance(entry, dict):
            batch.problems.append(f"entry[{e}] debe ser un objeto")
            continue
        ours = _optional(_identifier, entry.get("id")) or account_id or ""
        time = _optional(_ms, entry.get("time"))
        for i, event in enumerate(_items(entry, "messaging", f"entry[{e}].messaging", batch)):
            at = f"entry[{e}].messaging[{i}]"
            _guarded(
                batch, "instagram", event, at, partial(_instagram_event, event, ours, time, at)
            )
    return batch


def _instagram_event(event: Any, ours: str, entry_time: int | None, where: str) -> Item | None:
    if not isinstance(event, dict):
        return _rejected("instagram", event, f"mensaje malformado: {where} no es un objeto")
    wrong: list[str] = []
    who = event.get("sender")
    sender = _required(
        _identifier, who.get("id") if isinstance(who, dict) else None, "remitente", wrong
    )
    stamp = event.get("timestamp")
    ts = _required(_ms, stamp, "fecha", wrong) if stamp not in (None, "") else entry_time
    if isinstance(read := event.get("read"), dict):
        if read.get("mid") in (None, ""):
            return None  # an old-style read up to a watermark: nothing to match it with
        mid = _required(_identifier, read["mid"], "id", wrong)
        return StatusEvent("instagram", mid, "read", ts) if mid else _ig_rejected(event, wrong)
    message = event.get("message", event.get("postback"))  # a postback reads like a message
    if (isinstance(message, dict) and message.get("is_echo")) or (sender and sender == ours):
        return None  # our own send (or the owner's, from the Instagram app) coming back
    notice = next((key for key in _IG_NOTICES if isinstance(event.get(key), dict)), None)
    if message is None and notice is None:
        return None  # seen, opt-ins, handover and fields we do not use
    if sender is None or ts is None or wrong:
        return _ig_rejected(event, wrong or ["falta fecha"], sender, ts)
    if message is None:
        assert notice is not None
        return _IG_NOTICES[notice](event[notice], sender, ts)
    try:
        return _instagram_message(_obj(message, f"{where}.message"), sender, ts, where)
    except PayloadError as exc:
        return _ig_rejected(event, [str(exc)], sender, ts)


def _ig_rejected(
    event: Any, wrong: list[str], sender: str | None = None, ts: int | None = None
) -> Notice:
    reason = _clip("mensaje malformado: " + "; ".join(wrong))
    return Notice("instagram", sender, derived_id(event), ts, REJECTED, reason)


def _ig_reaction(reaction: dict[str, Any], sender: str, ts: int) -> Notice:
    emoji = reaction.get("emoji") if reaction.get("action") != "unreact" else None
    mid = _optional(_identifier, reaction.get("mid")) or derived_id(reaction)
    return Notice("instagram", sender, f"{mid}#reaction@{ts}", ts, "reaction", _reaction(emoji))


def _ig_edit(edit: dict[str, Any], sender: str, ts: int) -> Notice:
    mid = _optional(_identifier, edit.get("mid")) or derived_id(edit)
    number = _whole(edit.get("num_edit"))
    return Notice(
        "instagram",
        sender,
        f"{mid}#edit{'' if number is None else number}",
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
    mid = _identifier(message.get("mid"), "id") or derived_id(message)
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
        kind = _optional(_kind, first.get("type")) or "unsupported"
    return _inbound("instagram", sender, mid, ts, kind, _Reading(text))


_IG_NOTICES = {"reaction": _ig_reaction, "message_edit": _ig_edit, "referral": _ig_referral}

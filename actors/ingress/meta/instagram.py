"""Instagram Messaging webhooks: every entry and messaging event."""

from __future__ import annotations

from functools import partial
from typing import Any

from sales.failpoints import Failpoints

from .shapes import (
    REJECTED,
    InboundEvent,
    Item,
    Notice,
    PayloadError,
    StatusEvent,
    WebhookBatch,
)
from .values import (
    _clip,
    _edited,
    _envelope,
    _guarded,
    _identifier,
    _inbound,
    _items,
    _kind,
    _ms,
    _obj,
    _optional,
    _reaction,
    _Reading,
    _rejected,
    _required,
    _whole,
    derived_id,
    sanitize,
)

# --- Instagram Messaging --------------------------------------------------------------------


def parse_instagram(
    payload: Any, account_id: str | None, failpoints: Failpoints | None = None
) -> WebhookBatch:
    """Messages from users; echoes of our own sends are skipped; reactions, edits, deletions
    and referrals are notices; read events become receipts. `failpoints` are for drills and
    tests (`webhook.read`)."""
    failpoints = Failpoints() if failpoints is None else failpoints
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
            read = partial(_instagram_event, event, ours, time, at)
            _guarded(batch, "instagram", event, at, read, failpoints)
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

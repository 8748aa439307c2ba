"""Reading one value and one item at a time: sanitizing a body, ids, times, codes and
texts checked on their own, and the helpers both channels share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sales.failpoints import Failpoints

from .shapes import (
    _KIND,
    _SURROGATE,
    EARLIEST_SECONDS,
    FAILED,
    LATEST_SECONDS,
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_ERROR_CODE,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MEDIA_LABELS,
    MS_PER_SECOND,
    REASON_CHARS,
    REJECTED,
    REPLACEMENT,
    TOO_DEEP,
    InboundEvent,
    Item,
    Notice,
    PayloadError,
    ReadError,
    WebhookBatch,
    item_id,
)


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
    batch: WebhookBatch,
    channel: str,
    item: Any,
    where: str,
    read: Callable[[], Item | None],
    failpoints: Failpoints,
) -> None:
    """Read one item. A bug met on the way is ours, not Meta's: the item becomes an `error`
    notice (the exception is kept for the log), and its neighbours are read on. The failpoint
    `webhook.read` (`@` the item's id) stands for such a bug, in drills and tests."""
    try:
        found = read()
        if found is not None:
            failpoints.hit("webhook.read", item_id(found))
        batch.add(found)
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

"""What a Meta webhook becomes: the typed items of a batch, the limits an item must keep,
and the signature check."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

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


def item_id(item: Item) -> str:
    """The id an item is known by: a message's or notice's external id, a receipt's message."""
    return item.provider_message_id if isinstance(item, StatusEvent) else item.external_id


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

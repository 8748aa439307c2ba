"""Meta webhooks: signature check and the payload shapes of WhatsApp Cloud API and Instagram
Messaging, read whole (every entry, change, message and status; never only the first).

Parsing is pure: a payload in, a `WebhookBatch` out (a drill's `webhook.read` failpoint
aside). Only a body that is not Meta's envelope
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

from .instagram import parse_instagram
from .shapes import (
    FAILED,
    MEDIA_LABELS,
    REJECTED,
    SIGNATURE_HEADER,
    InboundEvent,
    Item,
    Notice,
    PayloadError,
    ReadError,
    StatusEvent,
    WebhookBatch,
    item_id,
    signature_valid,
)
from .values import derived_id, sanitize
from .whatsapp import parse_whatsapp

__all__ = [
    "FAILED",
    "MEDIA_LABELS",
    "REJECTED",
    "SIGNATURE_HEADER",
    "InboundEvent",
    "Item",
    "Notice",
    "PayloadError",
    "ReadError",
    "StatusEvent",
    "WebhookBatch",
    "derived_id",
    "item_id",
    "parse_instagram",
    "parse_whatsapp",
    "sanitize",
    "signature_valid",
]

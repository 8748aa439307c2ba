"""What people sent that the assistant cannot read or does not answer (unsupported messages,
media without text, reactions, edits, deletions, system notices), and webhook items that
could not be kept: kind `rejected` (a shape or value Meta never sends, with the reason) and
kind `error` (a bug of ours met while reading or storing the item). One row each, recorded
once per (channel, kind, provider id), for the owner to see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Database, utc_now
from .sandbox import key_clause

MAX_PAGE = 200


@dataclass(frozen=True)
class UnsupportedEvent:
    channel: str
    external_id: str
    kind: str
    reason: str
    sender: str | None = None
    conversation_id: int | None = None
    message_id: int | None = None  # set when it is also a message of the conversation
    provider_ts: int | None = None


def record(db: Database, event: UnsupportedEvent) -> bool:
    """Store the event; False when it was recorded before (Meta redelivers)."""
    return bool(
        db.changes(
            "INSERT INTO unsupported_events (channel, external_id, kind, reason, sender,"
            " conversation_id, message_id, provider_ts, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, kind, external_id) DO NOTHING",
            (
                event.channel,
                event.external_id,
                event.kind,
                event.reason,
                event.sender,
                event.conversation_id,
                event.message_id,
                event.provider_ts,
                utc_now(),
            ),
        )
    )


def latest(db: Database, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """The newest first; `before` (an id from the previous page) pages back. Simulated
    people live in the demo sandbox and are never listed."""
    where, params = f"sender IS NULL OR NOT {key_clause('sender')}", []
    if before is not None:
        where, params = f"id < ? AND ({where})", [before]
    rows = db.all(
        "SELECT id, channel, conversation_id, sender, kind, reason,"
        " message_id IS NOT NULL AS in_conversation, provider_ts, created_at"
        f" FROM unsupported_events WHERE {where} ORDER BY id DESC LIMIT ?",
        (*params, max(1, min(limit, MAX_PAGE))),
    )
    return [{**row, "in_conversation": bool(row["in_conversation"])} for row in rows]

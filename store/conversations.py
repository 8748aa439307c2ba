"""Conversations: one active conversation per (channel, external key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Database, utc_now


@dataclass(frozen=True)
class Conversation:
    id: int
    channel: str
    external_key: str
    status: str
    lead_id: int | None
    created_at: str


def _from_row(row: dict[str, Any]) -> Conversation:
    return Conversation(
        id=row["id"],
        channel=row["channel"],
        external_key=row["external_key"],
        status=row["status"],
        lead_id=row["lead_id"],
        created_at=row["created_at"],
    )


_COLUMNS = "id, channel, external_key, status, lead_id, created_at"


def find_active(db: Database, channel: str, external_key: str) -> Conversation | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM conversations"
        " WHERE channel = ? AND external_key = ? AND status = 'active'",
        (channel, external_key),
    )
    return _from_row(row) if row else None


def get(db: Database, conversation_id: int) -> Conversation | None:
    row = db.one(f"SELECT {_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,))
    return _from_row(row) if row else None


def open_conversation(db: Database, channel: str, external_key: str) -> Conversation:
    """The active conversation for this person, created when there is none."""
    with db.transaction():
        found = find_active(db, channel, external_key)
        if found:
            return found
        now = utc_now()
        new_id = db.insert(
            "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (channel, external_key, now, now),
        )
    return Conversation(new_id, channel, external_key, "active", None, now)


def close_conversation(db: Database, channel: str, external_key: str) -> bool:
    """End the active conversation (a chat reset); its messages stay for the records."""
    return (
        db.changes(
            "UPDATE conversations SET status = 'closed', updated_at = ?"
            " WHERE channel = ? AND external_key = ? AND status = 'active'",
            (utc_now(), channel, external_key),
        )
        > 0
    )


def attach_lead(db: Database, conversation_id: int, lead_id: int) -> None:
    db.execute(
        "UPDATE conversations SET lead_id = ?, updated_at = ? WHERE id = ?",
        (lead_id, utc_now(), conversation_id),
    )


def latest_for_lead(db: Database, lead_id: int) -> Conversation | None:
    """The lead's conversation where the person wrote last (any channel)."""
    row = db.one(
        f"SELECT {_COLUMNS} FROM conversations WHERE lead_id = ?"
        " ORDER BY (SELECT max(id) FROM messages m WHERE m.conversation_id = conversations.id"
        " AND m.role = 'user') DESC, id DESC LIMIT 1",
        (lead_id,),
    )
    return _from_row(row) if row else None


def set_paused(db: Database, conversation_id: int, paused: bool) -> bool:
    """Pause (a person answers) or resume the bot for one conversation."""
    return bool(
        db.changes(
            "UPDATE conversations SET paused_at = ?, updated_at = ? WHERE id = ?",
            (utc_now() if paused else None, utc_now(), conversation_id),
        )
    )


def is_paused(db: Database, conversation_id: int) -> bool:
    return bool(
        db.scalar(
            "SELECT paused_at IS NOT NULL FROM conversations WHERE id = ?", (conversation_id,)
        )
    )


def for_lead(db: Database, lead_id: int) -> list[dict[str, object]]:
    return db.all(
        "SELECT id, channel, status, paused_at, created_at FROM conversations"
        " WHERE lead_id = ? ORDER BY id",
        (lead_id,),
    )

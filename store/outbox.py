"""The outbox: every message for a provider is a row before the first attempt.

A send is marked `sent` in the same transaction that records the provider's message id; a
failed attempt keeps its next attempt time here, so the retry schedule survives a restart;
a send that can never succeed ends `failed` or `skipped` with its reason, never vanishes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .db import Database, utc_after, utc_now

SendKind = Literal["text", "read", "template"]  # a channel text, a read receipt, a template


@dataclass(frozen=True)
class OutboxItem:
    id: int
    conversation_id: int
    channel: str
    recipient: str
    kind: SendKind
    body: str
    reply_id: int | None
    part: int
    attempts: int


@dataclass(frozen=True)
class ChannelCounts:
    pending: int
    failed: int
    last_error: str | None


_COLUMNS = "id, conversation_id, channel, recipient, kind, body, reply_id, part, attempts"


def _from_row(row: dict[str, Any]) -> OutboxItem:
    return OutboxItem(**row)


def enqueue(
    db: Database,
    conversation_id: int,
    channel: str,
    recipient: str,
    kind: SendKind,
    bodies: Sequence[str],
    reply_id: int | None = None,
) -> list[int]:
    """Queue one send per body (the parts of one reply keep their order)."""
    now = utc_now()
    ids = []
    with db.transaction():
        for part, body in enumerate(bodies):
            ids.append(
                db.insert(
                    "INSERT INTO outbox (conversation_id, channel, recipient, kind, body,"
                    " reply_id, part, next_attempt_at, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        channel,
                        recipient,
                        kind,
                        body,
                        reply_id,
                        part,
                        now,
                        now,
                        now,
                    ),
                )
            )
    return ids


def due_conversations(
    db: Database, now: str, limit: int = 500, owner: str | None = None
) -> list[int]:
    """Conversations with a send whose time has come (each is drained in order). With
    `owner` (a cluster), those whose outbox another process holds a live lease on are
    skipped, as `FOR UPDATE SKIP LOCKED` skips a locked row: that one is draining them, and
    trying for its lease would only cost a write. (A lease, not a row lock, is the claim:
    it must last across the send's await, longer than any transaction is held.)"""
    if owner is None:
        rows = db.rows(
            "SELECT DISTINCT conversation_id FROM outbox"
            " WHERE status = 'pending' AND next_attempt_at <= ? LIMIT ?",
            (now, limit),
        )
    else:
        rows = db.rows(
            "SELECT DISTINCT o.conversation_id FROM outbox o"
            " WHERE o.status = 'pending' AND o.next_attempt_at <= ? AND NOT EXISTS ("
            "SELECT 1 FROM leases l WHERE l.name = 'outbox:' || o.conversation_id"
            " AND l.owner <> ? AND l.expires_at > ?) LIMIT ?",
            (now, owner, now, limit),
        )
    return [int(str(row[0])) for row in rows]


def next_for_conversation(db: Database, conversation_id: int) -> tuple[OutboxItem, str] | None:
    """The conversation's oldest pending send and when it may go: sends keep their order,
    so a send waiting for its retry holds back the ones after it."""
    row = db.one(
        f"SELECT {_COLUMNS}, next_attempt_at FROM outbox"
        " WHERE conversation_id = ? AND status = 'pending' ORDER BY id LIMIT 1",
        (conversation_id,),
    )
    if row is None:
        return None
    at = row.pop("next_attempt_at")
    return _from_row(row), str(at)


def mark_sending(db: Database, item_id: int) -> None:
    """Committed just before the request to Meta goes out: a row still marked after a restart
    was cut by a crash mid-send, and may have been delivered."""
    db.execute("UPDATE outbox SET sending_since = ? WHERE id = ?", (utc_now(), item_id))


def cut_by_crash(db: Database, conversation_id: int | None = None) -> int:
    """Sends that were in flight when the process died (marked, never answered): counted,
    unmarked and left pending, so they go again — at most one duplicate each. In a cluster,
    one conversation's, by whoever just took its outbox lease (its sender is gone)."""
    if conversation_id is None:
        return db.changes(
            "UPDATE outbox SET sending_since = NULL"
            " WHERE sending_since IS NOT NULL AND status = 'pending'"
        )
    return db.changes(
        "UPDATE outbox SET sending_since = NULL"
        " WHERE conversation_id = ? AND sending_since IS NOT NULL AND status = 'pending'",
        (conversation_id,),
    )


def mark_sent(db: Database, item_id: int, provider_message_id: str | None) -> None:
    # A provider repeating an id must not stop deliveries: sent, the id kept in the note. One
    # statement, no failed one to catch: a failed statement ends a PostgreSQL transaction.
    taken = (
        "EXISTS (SELECT 1 FROM outbox o WHERE o.channel = outbox.channel"
        " AND o.provider_message_id = ? AND o.id != outbox.id)"
    )
    db.execute(
        "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sending_since = NULL,"
        f" provider_message_id = CASE WHEN {taken} THEN NULL ELSE ? END,"
        f" error = CASE WHEN {taken} THEN ? ELSE NULL END, updated_at = ? WHERE id = ?",
        (
            provider_message_id,
            provider_message_id,
            provider_message_id,
            f"id repetido por el proveedor: {provider_message_id}",
            utc_now(),
            item_id,
        ),
    )


def mark_failed(db: Database, item_id: int, reason: str, *, status: str = "failed") -> None:
    db.execute(
        "UPDATE outbox SET status = ?, error = ?, attempts = attempts + 1, sending_since = NULL,"
        " updated_at = ? WHERE id = ?",
        (status, reason[:500], utc_now(), item_id),
    )


def schedule_retry(db: Database, item_id: int, reason: str, delay_seconds: float) -> None:
    at = utc_after(delay_seconds)
    db.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, error = ?,"
        " sending_since = NULL, updated_at = ? WHERE id = ?",
        (at, reason[:500], utc_now(), item_id),
    )


def record_status(
    db: Database,
    channel: str,
    provider_message_id: str,
    status: str,
    provider_ts: int | None,
    error_code: int | None = None,
    error_title: str | None = None,
) -> bool:
    """A delivery receipt; False when this (message, status) was already recorded."""
    changed = db.changes(
        "INSERT INTO delivery_statuses (channel, provider_message_id, status,"
        " error_code, error_title, provider_ts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (channel, provider_message_id, status) DO NOTHING",
        (channel, provider_message_id, status, error_code, error_title, provider_ts, utc_now()),
    )
    if changed and status == "failed":
        db.execute(
            "UPDATE outbox SET status = 'failed', error = ?, updated_at = ?"
            " WHERE channel = ? AND provider_message_id = ?",
            (f"{error_code}: {error_title}", utc_now(), channel, provider_message_id),
        )
    return bool(changed)


def counts(db: Database, channel: str) -> ChannelCounts:
    row = db.one(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending,"
        " count(*) FILTER (WHERE status = 'failed') AS failed"
        " FROM outbox WHERE channel = ?",
        (channel,),
    )
    last = db.scalar(
        "SELECT error FROM outbox WHERE channel = ? AND error IS NOT NULL"
        " ORDER BY updated_at DESC LIMIT 1",
        (channel,),
    )
    return ChannelCounts(
        int((row or {}).get("pending") or 0), int((row or {}).get("failed") or 0), last
    )

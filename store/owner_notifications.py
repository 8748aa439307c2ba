"""Messages to the business owner (alerts, reminders, the daily summary), by e-mail or
webhook. Like the outbox: a row before the first attempt, the retry time kept here, a final
state (sent, or failed with the reason) — and a `dedupe_key`, so each happens once.

Before an attempt the row is marked `sending`; a row found `sending` after a restart was cut
mid-attempt and may have gone out: it is sent again (at most one duplicate) and reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Database, utc_after, utc_now


@dataclass(frozen=True)
class OwnerMessage:
    subject: str
    text: str
    html: str | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Notification:
    id: int
    lead_id: int | None
    transport: str  # "email" | "webhook"
    event: str
    subject: str
    body_text: str
    body_html: str | None
    urgent: bool
    status: str
    attempts: int


_COLUMNS = "id, lead_id, transport, event, subject, body_text, body_html, urgent, status, attempts"


def _from_row(row: dict[str, Any]) -> Notification:
    return Notification(**{**row, "urgent": bool(row["urgent"])})


def enqueue(
    db: Database,
    transport: str,
    event: str,
    dedupe_key: str,
    message: OwnerMessage,
    lead_id: int | None = None,
) -> int | None:
    """Queue once; None when this `dedupe_key` was already queued."""
    now = utc_now()
    new_id = db.returning(
        "INSERT INTO owner_notifications (lead_id, transport, event, dedupe_key,"
        " subject, body_text, body_html, urgent, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        (
            lead_id,
            transport,
            event,
            dedupe_key,
            message.subject,
            message.text,
            message.html,
            int(message.urgent),
            now,
            now,
            now,
        ),
    )
    return None if new_id is None else int(new_id)


def exists(db: Database, dedupe_key: str) -> bool:
    return bool(db.scalar("SELECT 1 FROM owner_notifications WHERE dedupe_key = ?", (dedupe_key,)))


def due(db: Database, now: str, limit: int = 50) -> list[Notification]:
    rows = db.all(
        f"SELECT {_COLUMNS} FROM owner_notifications WHERE status IN ('pending', 'sending')"
        " AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        (now, limit),
    )
    return [_from_row(r) for r in rows]


def mark_sending(db: Database, item_id: int) -> None:
    db.execute(
        "UPDATE owner_notifications SET status = 'sending', updated_at = ? WHERE id = ?",
        (utc_now(), item_id),
    )


def mark_sent(db: Database, item_id: int) -> None:
    db.execute(
        "UPDATE owner_notifications SET status = 'sent', attempts = attempts + 1, error = NULL,"
        " updated_at = ? WHERE id = ?",
        (utc_now(), item_id),
    )


def mark_failed(db: Database, item_id: int, reason: str) -> None:
    db.execute(
        "UPDATE owner_notifications SET status = 'failed', attempts = attempts + 1, error = ?,"
        " updated_at = ? WHERE id = ?",
        (reason[:500], utc_now(), item_id),
    )


def schedule_retry(db: Database, item_id: int, reason: str, delay_seconds: float) -> None:
    at = utc_after(delay_seconds)
    db.execute(
        "UPDATE owner_notifications SET status = 'pending', attempts = attempts + 1,"
        " next_attempt_at = ?, error = ?, updated_at = ? WHERE id = ?",
        (at, reason[:500], utc_now(), item_id),
    )


def interrupted(db: Database) -> int:
    """Rows cut mid-attempt by a crash: they go again (reported by the caller)."""
    return int(db.scalar("SELECT count(*) FROM owner_notifications WHERE status = 'sending'") or 0)


def counts(db: Database) -> dict[str, int]:
    rows = db.rows("SELECT status, count(*) FROM owner_notifications GROUP BY status")
    return {str(status): int(str(n)) for status, n in rows}


def for_lead(db: Database, lead_id: int) -> list[dict[str, Any]]:
    return db.all(
        "SELECT id, transport, event, subject, status, attempts, error, created_at, updated_at"
        " FROM owner_notifications WHERE lead_id = ? ORDER BY id",
        (lead_id,),
    )

"""Follow-ups: every attempt to bring back a lead that went quiet, and what became of it.

A follow-up number is used once per silence (`cycle` = the person's last message time), so
a scheduler that runs twice, or again after a crash, never sends a second one."""

from __future__ import annotations

from typing import Any

from .db import Database, utc_now


def count_in_cycle(db: Database, lead_id: int, cycle: str) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM follow_ups WHERE lead_id = ? AND cycle = ?", (lead_id, cycle)
        )
        or 0
    )


def last_in_cycle(db: Database, lead_id: int, cycle: str) -> str | None:
    value = db.scalar(
        "SELECT max(created_at) FROM follow_ups WHERE lead_id = ? AND cycle = ?",
        (lead_id, cycle),
    )
    return None if value is None else str(value)


def record(
    db: Database,
    lead_id: int,
    cycle: str,
    number: int,
    channel: str,
    status: str,
    *,
    reason: str | None = None,
    outbox_id: int | None = None,
    notification_id: int | None = None,
    at: str | None = None,
) -> int | None:
    """Record an attempt; None when this number of this cycle was already used."""
    new_id = db.returning(
        "INSERT INTO follow_ups (lead_id, cycle, number, channel, status, reason, outbox_id,"
        " notification_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (lead_id, cycle, number) DO NOTHING RETURNING id",
        (
            lead_id,
            cycle,
            number,
            channel,
            status,
            reason,
            outbox_id,
            notification_id,
            at or utc_now(),
        ),
    )
    return None if new_id is None else int(new_id)


def for_lead(db: Database, lead_id: int) -> list[dict[str, Any]]:
    """Every attempt with its outcome: a queued send shows the outbox's state."""
    return db.all(
        "SELECT f.id, f.number, f.channel, f.created_at,"
        " CASE WHEN f.status = 'queued' THEN coalesce(o.status, 'pending') ELSE f.status END"
        " AS status, coalesce(f.reason, o.error) AS reason"
        " FROM follow_ups f LEFT JOIN outbox o ON o.id = f.outbox_id"
        " WHERE f.lead_id = ? ORDER BY f.id",
        (lead_id,),
    )


def counts(db: Database) -> dict[str, int]:
    rows = db.rows(
        "SELECT CASE WHEN f.status = 'queued' THEN coalesce(o.status, 'pending')"
        " ELSE f.status END AS s, count(*) FROM follow_ups f"
        " LEFT JOIN outbox o ON o.id = f.outbox_id GROUP BY s"
    )
    return {str(s): int(str(n)) for s, n in rows}

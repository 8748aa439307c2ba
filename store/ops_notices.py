"""What each process last told operations about its health, and the telling itself.

A notice is queued as owner_notifications rows (event `ops_*`, one per transport) in the
same transaction that records the new state, so a crash either did both or neither: a
restart neither repeats a notice nor loses one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from . import owner_notifications
from .db import Database
from .owner_notifications import OwnerMessage


@dataclass(frozen=True)
class OpsState:
    status: str  # the status last told: ok | degraded | failing
    reasons: tuple[str, ...]
    notices: int  # how many notices this process has sent so far
    notified_at: str | None


def state(db: Database, worker: str) -> OpsState | None:
    row = db.one(
        "SELECT status, reasons, notices, notified_at FROM ops_notice_state WHERE worker = ?",
        (worker,),
    )
    if row is None:
        return None
    return OpsState(
        str(row["status"]),
        tuple(json.loads(row["reasons"])),
        int(row["notices"]),
        None if row["notified_at"] is None else str(row["notified_at"]),
    )


def record(
    db: Database,
    worker: str,
    status: str,
    reasons: Sequence[str],
    at: str,
    messages: Sequence[tuple[str, str, OwnerMessage]],
) -> list[int]:
    """`status` told at `at`: the state and the notices, `messages` as (transport, event,
    message), in one transaction. Returns the queued notifications' ids."""
    with db.transaction():
        before = state(db, worker)
        number = (before.notices if before else 0) + 1
        db.execute(
            "INSERT INTO ops_notice_state (worker, status, reasons, notices, notified_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET"
            " status = excluded.status, reasons = excluded.reasons,"
            " notices = excluded.notices, notified_at = excluded.notified_at,"
            " updated_at = excluded.updated_at",
            (worker, status, json.dumps(list(reasons), ensure_ascii=False), number, at, at),
        )
        queued = [
            owner_notifications.enqueue(
                db, transport, event, f"ops:{worker}:{number}:{transport}", message
            )
            for transport, event, message in messages
        ]
    return [i for i in queued if i is not None]

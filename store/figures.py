"""The figures /metrics shows that are facts of the whole store, not of one process: messages,
leads, class changes and conversions by channel, the delivery queues, backups. Any worker of
a cluster reads the same numbers, so these series carry no worker label. The demo's sandbox
is never counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .db import Database, from_text, to_text

# An owner notification that failed for good this recently still counts as failing.
FAILED_RECENTLY = timedelta(hours=1)
OPS_EVENTS = "ops_%"  # notices to operations (store/ops_notices.py), not to the owner


@dataclass(frozen=True)
class ClusterFigures:
    messages: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, direction)
    leads: dict[tuple[str, str], int] = field(default_factory=dict)  # (class, channel)
    leads_created: dict[str, int] = field(default_factory=dict)  # channel
    class_changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, class)
    conversions: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, stage)
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status)
    owner_notifications: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, st.)
    owner_failing: dict[str, int] = field(default_factory=dict)  # kind
    backup_last_success: float | None = None  # Unix time of the newest good backup
    backup_last_attempt_ok: bool | None = None
    backups: dict[str, int] = field(default_factory=dict)  # outcome: ok | failed


def read(db: Database, now: datetime) -> ClusterFigures:
    return ClusterFigures(
        messages=_messages(db),
        leads={(str(k), str(c)): int(n) for k, c, n in db.rows(_LEADS)},
        leads_created={str(c): int(n) for c, n in db.rows(_CREATED)},
        class_changes={(str(c), str(k)): int(n) for c, k, n in db.rows(_CLASS_CHANGES)},
        conversions=_conversions(db),
        outbox={(str(c), str(s)): int(n) for c, s, n in db.rows(_OUTBOX)},
        owner_notifications={
            (str(k), str(s)): int(n) for k, s, n in db.rows(_OWNER, (OPS_EVENTS,))
        },
        owner_failing={
            str(k): int(n)
            for k, n in db.rows(_OWNER_FAILING, (OPS_EVENTS, to_text(now - FAILED_RECENTLY)))
        },
        backups={("ok" if ok else "failed"): int(n) for ok, n in db.rows(_BACKUP_OUTCOMES)},
        backup_last_success=_last_good(db),
        backup_last_attempt_ok=_last_attempt_ok(db),
    )


# Real leads and messages from the counters the writes keep (store/migrations.py
# COUNTS_BY_STATUS_AND_MESSAGES): a scrape reads a few dozen rows, not the store.
_LEADS = (
    "SELECT classification, channel, sum(n) FROM lead_counts"
    " GROUP BY classification, channel HAVING sum(n) > 0"
)
_CREATED = "SELECT channel, sum(n) FROM lead_counts GROUP BY channel HAVING sum(n) > 0"
_CLASS_CHANGES = (
    "SELECT l.channel, c.classification, count(*) FROM lead_classifications c"
    " JOIN leads l ON l.id = c.lead_id WHERE l.sandbox = 0"
    " GROUP BY l.channel, c.classification"
)
_OUTBOX = (
    "SELECT channel, status, count(*) FROM outbox WHERE status IN ('pending', 'failed')"
    " GROUP BY channel, status"
)
_KIND = "CASE WHEN event LIKE ? THEN 'ops' ELSE 'owner' END"
_OWNER = (
    f"SELECT kind, status, count(*) FROM (SELECT {_KIND} AS kind, status"
    " FROM owner_notifications) n GROUP BY kind, status"
)
# Failing: the last attempt failed (a retry is waiting), or it failed for good lately.
_OWNER_FAILING = (
    f"SELECT kind, count(*) FROM (SELECT {_KIND} AS kind FROM owner_notifications"
    " WHERE (status = 'pending' AND error IS NOT NULL)"
    " OR (status = 'failed' AND updated_at >= ?)) n GROUP BY kind"
)


def _messages(db: Database) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for channel, role, n in db.rows("SELECT channel, role, n FROM message_counts WHERE n > 0"):
        key = (str(channel), "in" if role == "user" else "out")
        found[key] = found.get(key, 0) + int(n)
    return found


def _conversions(db: Database) -> dict[tuple[str, str], int]:
    """Leads contacted (contacted, or marked contacted or won) and won, by channel."""
    found: dict[tuple[str, str], int] = {}
    for channel, contacted, won in db.rows(
        "SELECT channel,"
        " sum(CASE WHEN contacted = 1 OR status IN ('contacted', 'won') THEN n ELSE 0 END),"
        " sum(CASE WHEN status = 'won' THEN n ELSE 0 END)"
        " FROM lead_counts GROUP BY channel HAVING sum(n) > 0"
    ):
        found[(str(channel), "contacted")] = int(contacted or 0)
        found[(str(channel), "won")] = int(won or 0)
    return found


def _last_good(db: Database) -> float | None:
    at = db.scalar("SELECT max(at) FROM backups WHERE ok = 1")
    return None if at is None else from_text(str(at)).timestamp()


def _last_attempt_ok(db: Database) -> bool | None:
    last = db.one("SELECT ok FROM backups ORDER BY at DESC, id DESC LIMIT 1")
    return None if last is None else bool(last["ok"])


_BACKUP_OUTCOMES = "SELECT ok, count(*) FROM backups GROUP BY ok"

"""Failed dashboard logins per client, in the store so every process of a cluster counts
the same attempts (actors/ingress/admin_auth.py throttles on them)."""

from __future__ import annotations

from .db import Database, from_text, utc_after, utc_now


def recent(db: Database, client: str, window: float) -> list[str]:
    """The times of `client`'s failures in the last `window` seconds, oldest first."""
    return [
        str(at)
        for (at,) in db.rows(
            "SELECT at FROM login_failures WHERE client = ? AND at > ? ORDER BY at",
            (client, utc_after(-window)),
        )
    ]


def attempt(db: Database, client: str, limit: int, window: float) -> float:
    """Take one attempt (0.0, counted as a failure until `succeeded`) or the seconds to wait
    when `client` already failed `limit` times within `window`. One transaction: on SQLite
    (one writer) two processes cannot both take the last attempt; on PostgreSQL two racing
    to the same limit may each take one more (read committed), never more than that each."""
    with db.transaction():
        db.execute("DELETE FROM login_failures WHERE at <= ?", (utc_after(-window),))
        failures = recent(db, client, window)
        if len(failures) >= limit:
            oldest = from_text(failures[-limit])
            return max(0.0, window - (from_text(utc_now()) - oldest).total_seconds())
        db.execute("INSERT INTO login_failures (client, at) VALUES (?, ?)", (client, utc_now()))
        return 0.0


def succeeded(db: Database, client: str) -> None:
    db.execute("DELETE FROM login_failures WHERE client = ?", (client,))

"""Leases: which process owns a piece of work, until when.

A lease is a row (`name`, `owner`, `expires_at`): `leader`, `conversation:<id>`... The owner
is a process's identity (sales/identity.py, `node/worker`). `take` gives it to `owner` when
nobody holds it, when `owner` already does (then it is renewed), or when its holder let it
expire (a dead process: its work is taken over); one statement, so two processes racing for
it cannot both win, on SQLite (one writer) or PostgreSQL (the row is locked by the first).
Holders renew their leases while they work (`renew_all`, the cluster actor every few
seconds) and release them when done. Times are the store's ISO-8601 UTC text; the processes
of a cluster are expected to keep their clocks in step (NTP), well within a lease's time."""

from __future__ import annotations

from dataclasses import dataclass

from .db import Database, utc_after, utc_now

LEASE_TTL = 6.0  # seconds: renewed every 2 s, so a dead process's leases lapse within 10 s
LEADER = "leader"


def conversation(conversation_id: int) -> str:
    """Who answers this conversation's messages (actors/conversation/lanes.py)."""
    return f"conversation:{conversation_id}"


def outbox(conversation_id: int) -> str:
    """Who sends this conversation's outbox, in order (actors/notifier)."""
    return f"outbox:{conversation_id}"


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    expires_at: str
    acquired_at: str


def take(db: Database, name: str, owner: str, ttl: float = LEASE_TTL) -> bool:
    """Whether `owner` holds `name` for `ttl` seconds from now (taken, renewed or stolen
    from a holder whose lease expired)."""
    if not name or not owner or ttl <= 0:
        raise ValueError(f"a lease needs a name, an owner and a positive time ({ttl!r})")
    now = utc_now()
    holder = db.returning(
        "INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
        " expires_at = excluded.expires_at,"
        " acquired_at = CASE WHEN leases.owner = excluded.owner THEN leases.acquired_at"
        " ELSE excluded.acquired_at END"
        " WHERE leases.owner = excluded.owner OR leases.expires_at <= excluded.acquired_at"
        " RETURNING owner",
        (name, owner, utc_after(ttl), now),
    )
    return bool(holder == owner)


def renew_all(db: Database, owner: str, ttl: float = LEASE_TTL) -> int:
    """Every lease `owner` still holds, good for `ttl` more seconds: how many. One that
    expired and that nobody took yet is renewed too (nobody acted on it meanwhile)."""
    return db.changes("UPDATE leases SET expires_at = ? WHERE owner = ?", (utc_after(ttl), owner))


def release(db: Database, name: str, owner: str) -> bool:
    """Give `name` up, if `owner` still holds it: whether it did."""
    return db.changes("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner)) > 0


def release_all(db: Database, owner: str) -> int:
    """Every lease of `owner` (a clean stop): how many."""
    return db.changes("DELETE FROM leases WHERE owner = ?", (owner,))


def holder(db: Database, name: str) -> str | None:
    """Who holds `name` now (None when nobody, or its lease expired)."""
    value = db.scalar(
        "SELECT owner FROM leases WHERE name = ? AND expires_at > ?", (name, utc_now())
    )
    return None if value is None else str(value)


def held(db: Database, owner: str) -> list[Lease]:
    """The live leases of `owner`, by name."""
    return [
        Lease(str(r["name"]), str(r["owner"]), str(r["expires_at"]), str(r["acquired_at"]))
        for r in db.all(
            "SELECT name, owner, expires_at, acquired_at FROM leases"
            " WHERE owner = ? AND expires_at > ? ORDER BY name",
            (owner, utc_now()),
        )
    ]


def counts(db: Database) -> dict[str, int]:
    """Live leases per owner."""
    return {
        str(owner): int(n)
        for owner, n in db.rows(
            "SELECT owner, count(*) FROM leases WHERE expires_at > ? GROUP BY owner ORDER BY owner",
            (utc_now(),),
        )
    }

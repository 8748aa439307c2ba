"""Dashboard sessions kept on the server (so logout really ends one)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .db import Database, from_text, to_text, utc_now

TOKEN_BYTES = 32  # 256 bits


@dataclass(frozen=True)
class Session:
    token_hash: str
    csrf: str
    created_at: str
    last_seen_at: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(db: Database, client: str | None) -> tuple[str, str]:
    """A new session: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)
    now = utc_now()
    db.execute(
        "INSERT INTO admin_sessions (token_hash, csrf, client, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (_hash(token), csrf, client, now, now),
    )
    return token, csrf


def touch(db: Database, token: str, idle: timedelta, absolute: timedelta) -> Session | None:
    """The live session for `token` (its idle time restarted), or None when there is none
    or it expired (then it is deleted)."""
    row = db.one(
        "SELECT token_hash, csrf, created_at, last_seen_at FROM admin_sessions"
        " WHERE token_hash = ?",
        (_hash(token),),
    )
    if row is None:
        return None
    now = datetime.now(UTC)
    created, seen = from_text(row["created_at"]), from_text(row["last_seen_at"])
    if now - seen > idle or now - created > absolute:
        db.execute("DELETE FROM admin_sessions WHERE token_hash = ?", (row["token_hash"],))
        return None
    db.execute(
        "UPDATE admin_sessions SET last_seen_at = ? WHERE token_hash = ?",
        (to_text(now), row["token_hash"]),
    )
    return Session(row["token_hash"], row["csrf"], row["created_at"], to_text(now))


def end(db: Database, token: str) -> None:
    db.execute("DELETE FROM admin_sessions WHERE token_hash = ?", (_hash(token),))

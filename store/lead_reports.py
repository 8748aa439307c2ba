"""What the dashboard reads and changes about leads: search with filters and pages, the
transcript, the salesperson's updates, statistics, and deletion on request. Real leads only:
the sandbox's (`sandbox = 1`, the demo's and simulated people's) are never listed, counted,
exported, shown or changed here (store/sandbox.py has them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .db import Database, utc_now
from .sandbox import key_clause
from .text import fold

LEAD_COLUMNS = (
    "id, channel, name, phone, email, service, area, urgency, budget, classification, score,"
    " reasons, status, contacted, notes, opted_out_at, created_at, updated_at,"
    " last_user_message_at"
)


@dataclass(frozen=True)
class LeadFilter:
    classification: str | None = None
    status: str | None = None
    channel: str | None = None
    contacted: bool | None = None
    since: str | None = None  # ISO date or time, inclusive
    until: str | None = None  # exclusive
    text: str | None = None


def _where(f: LeadFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = ["sandbox = 0"]
    params: list[Any] = []
    for column, value in (
        ("classification", f.classification),
        ("status", f.status),
        ("channel", f.channel),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if f.contacted is not None:
        clauses.append("contacted = ?")
        params.append(int(f.contacted))
    if f.since:
        clauses.append("created_at >= ?")
        params.append(f.since)
    if f.until:
        clauses.append("created_at < ?")
        params.append(f.until)
    if f.text:
        # instr, not LIKE: what the user types is text, never a pattern.
        columns = ("name", "phone", "email", "service", "area", "notes")
        clauses.append(
            "(" + " OR ".join(f"instr(ia_fold(coalesce({c}, '')), ?) > 0" for c in columns) + ")"
        )
        params += [fold(f.text)] * len(columns)
    return " AND ".join(clauses), params


def _lead(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "reasons": json.loads(row["reasons"] or "[]"),
        "contacted": bool(row["contacted"]),
    }


def search(
    db: Database, f: LeadFilter, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    where, params = _where(f)
    total = int(db.scalar(f"SELECT count(*) FROM leads WHERE {where}", params))
    rows = db.all(
        f"SELECT {LEAD_COLUMNS} FROM leads WHERE {where}"
        " ORDER BY score DESC, updated_at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [_lead(r) for r in rows], total


def get(db: Database, lead_id: int) -> dict[str, Any] | None:
    row = db.one(f"SELECT {LEAD_COLUMNS} FROM leads WHERE id = ? AND sandbox = 0", (lead_id,))
    return _lead(row) if row else None


def exists(db: Database, lead_id: int) -> bool:
    """A real lead (not the sandbox's) has this id."""
    return db.scalar("SELECT 1 FROM leads WHERE id = ? AND sandbox = 0", (lead_id,)) is not None


def transcript(db: Database, lead_id: int) -> list[dict[str, Any]]:
    """Every message of every conversation of the lead, oldest first."""
    return db.all(
        "SELECT m.id, c.id AS conversation_id, c.channel, m.role, m.content, m.kind,"
        " m.source, m.created_at FROM messages m JOIN conversations c"
        f" ON c.id = m.conversation_id WHERE c.lead_id = ? AND NOT {key_clause('c.external_key')}"
        " ORDER BY m.id",
        (lead_id,),
    )


def update(
    db: Database,
    lead_id: int,
    *,
    status: str | None = None,
    notes: str | None = None,
    contacted: bool | None = None,
) -> bool:
    sets: list[str] = ["updated_at = ?"]
    params: list[Any] = [utc_now()]
    if status is not None:
        sets.append("status = ?")
        params.append(status)
        if status != "new":
            sets.append("contacted = 1")
    if notes is not None:
        sets.append("notes = ?")
        params.append(notes)
    if contacted is not None:
        sets.append("contacted = ?")
        params.append(int(contacted))
    return bool(
        db.changes(
            f"UPDATE leads SET {', '.join(sets)} WHERE id = ? AND sandbox = 0", [*params, lead_id]
        )
    )


def delete(db: Database, lead_id: int) -> bool:
    """A data-deletion request: the lead, its conversations and their messages."""
    with db.transaction():
        if not exists(db, lead_id):
            return False  # nor a sandbox lead: the sandbox is emptied as a whole
        db.execute(
            "DELETE FROM conversations WHERE lead_id = ? OR id IN"
            " (SELECT id FROM conversations WHERE lead_id = ?)",
            (lead_id, lead_id),
        )
        db.execute("DELETE FROM owner_notifications WHERE lead_id = ?", (lead_id,))
        return bool(db.changes("DELETE FROM leads WHERE id = ?", (lead_id,)))


def statistics(db: Database) -> dict[str, Any]:
    by_class = {
        str(k): int(str(n))
        for k, n in db.rows(
            "SELECT classification, count(*) FROM leads WHERE sandbox = 0 GROUP BY classification"
        )
    }
    matrix: dict[str, dict[str, int]] = {}
    for channel, klass, n in db.rows(
        "SELECT channel, classification, count(*) FROM leads WHERE sandbox = 0"
        " GROUP BY channel, classification"
    ):
        matrix.setdefault(str(channel), {})[str(klass)] = int(str(n))
    per_day = [
        {"day": str(day), "leads": int(str(n))}
        for day, n in db.rows(
            "SELECT substr(created_at, 1, 10) AS day, count(*) FROM leads WHERE sandbox = 0"
            " GROUP BY day ORDER BY day DESC LIMIT 30"
        )
    ]
    funnel: dict[str, dict[str, int]] = {}
    for channel, total, contacted, won in db.rows(
        "SELECT channel, count(*),"
        " count(*) FILTER (WHERE contacted = 1 OR status IN ('contacted', 'won', 'lost')),"
        " count(*) FILTER (WHERE status = 'won') FROM leads WHERE sandbox = 0 GROUP BY channel"
    ):
        funnel[str(channel)] = {
            "new": int(str(total)),
            "contacted": int(str(contacted or 0)),
            "won": int(str(won or 0)),
        }
    first = [
        float(str(s))
        for (s,) in db.rows(
            "SELECT (julianday(min(a.created_at)) - julianday(min(u.created_at))) * 86400"
            " FROM messages u JOIN messages a ON a.conversation_id = u.conversation_id"
            " AND a.role = 'assistant' WHERE u.role = 'user' AND u.conversation_id NOT IN"
            f" (SELECT id FROM conversations WHERE {key_clause('external_key')})"
            " GROUP BY u.conversation_id"
        )
        if s is not None
    ]
    first.sort()
    median = first[len(first) // 2] if first else None
    return {
        "total": sum(by_class.values()),
        "porClase": {k: by_class.get(k, 0) for k in ("caliente", "tibio", "frio")},
        "canalPorClase": matrix,
        "porDia": list(reversed(per_day)),
        "embudo": funnel,
        "medianaPrimeraRespuestaSegundos": None if median is None else round(median, 2),
    }

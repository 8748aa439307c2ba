"""What the dashboard reads and changes about leads: search with filters and pages, the
transcript, the salesperson's updates, statistics, and deletion on request. Real leads only:
the sandbox's (`sandbox = 1`, the demo's and simulated people's) are never listed, counted,
exported, shown or changed here (store/sandbox.py has them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import search as search_index
from .db import Database, utc_now
from .sandbox import key_clause

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
    """The filter but its text, on the leads as `l`."""
    clauses: list[str] = ["l.sandbox = 0"]
    params: list[Any] = []
    for column, value in (
        ("classification", f.classification),
        ("status", f.status),
        ("channel", f.channel),
    ):
        if value:
            clauses.append(f"l.{column} = ?")
            params.append(value)
    if f.contacted is not None:
        clauses.append("l.contacted = ?")
        params.append(int(f.contacted))
    if f.since:
        clauses.append("l.created_at >= ?")
        params.append(f.since)
    if f.until:
        clauses.append("l.created_at < ?")
        params.append(f.until)
    return " AND ".join(clauses), params


def as_lead(row: dict[str, Any]) -> dict[str, Any]:
    """A row of LEAD_COLUMNS as the dashboard shows it."""
    return {
        **row,
        "reasons": json.loads(row["reasons"] or "[]"),
        "contacted": bool(row["contacted"]),
    }


@dataclass(frozen=True)
class LeadPage:
    """One page of the list; `total` counts every lead that matches, exactly unless
    `exact` is False (a search matching more than search.COUNT_CAP: "more than")."""

    rows: list[dict[str, Any]]
    total: int
    exact: bool = True


def search(db: Database, f: LeadFilter, limit: int = 50, offset: int = 0) -> LeadPage:
    """A page of the real leads the filter keeps: best first (score, then the latest
    change), or for a text search in the order of store/search.py. `f.text` must be
    `search.usable` (SearchTooShort otherwise)."""
    where, params = _where(f)
    if f.text:
        text = search_index.usable(f.text)
        # One more than the page or the cap needs: whether there are more.
        wanted = max(offset + limit, search_index.COUNT_CAP) + 1
        ids = search_index.matching_leads(db, text, where, params, wanted)
        page = ids[offset : offset + limit]
        found = {r["id"]: r for r in _by_ids(db, page)}
        rows = [found[i] for i in page if i in found]
        exact = len(ids) < wanted
        return LeadPage(rows, len(ids) if exact else wanted - 1, exact)
    rows = db.all(
        f"SELECT {LEAD_COLUMNS} FROM leads l WHERE {where}"
        " ORDER BY l.sandbox, l.score DESC, l.updated_at DESC, l.id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return LeadPage([as_lead(r) for r in rows], _count(db, f, where, params))


def _count(db: Database, f: LeadFilter, where: str, params: list[Any]) -> int:
    """How many real leads the filter keeps: from the counters when it asks only for a
    class and a channel (the dashboard's usual filters), else counted."""
    if f.status is None and f.contacted is None and not f.since and not f.until:
        clauses = [f"{c} = ?" for c, v in (("classification", f.classification),
                                            ("channel", f.channel)) if v]  # fmt: skip
        values = [v for v in (f.classification, f.channel) if v]
        return int(
            db.scalar(
                "SELECT coalesce(sum(n), 0) FROM lead_counts"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else ""),
                values,
            )
        )
    return int(db.scalar(f"SELECT count(*) FROM leads l WHERE {where}", params))


def _by_ids(db: Database, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return [
        as_lead(r)
        for r in db.all(
            # The ids come from a search of real leads; `sandbox = 0` here would make SQLite
            # walk that index instead of looking the ids up (30 ms at 500,000 leads).
            f"SELECT {LEAD_COLUMNS} FROM leads WHERE id IN ({marks})",
            ids,
        )
    ]


def export_rows(backend: str, f: LeadFilter, columns: str = LEAD_COLUMNS) -> tuple[str, list[Any]]:
    """The statement and parameters that read `columns` of every lead the filter keeps (the
    CSV), in the list's order without a search; a text search keeps its matches
    (search.usable, else SearchTooShort)."""
    where, params = _where(f)
    if f.text:
        clause, more = search_index.matches_clause(backend, search_index.usable(f.text))
        where, params = f"{where} AND {clause}", [*params, *more]
    return (
        f"SELECT {columns} FROM leads l WHERE {where}"
        " ORDER BY l.sandbox, l.score DESC, l.updated_at DESC, l.id DESC",
        params,
    )


def get(db: Database, lead_id: int) -> dict[str, Any] | None:
    row = db.one(f"SELECT {LEAD_COLUMNS} FROM leads WHERE id = ? AND sandbox = 0", (lead_id,))
    return as_lead(row) if row else None


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
        if status != "new" and contacted is None:
            contacted = True  # followed up: contacted (unless the update says otherwise)
    if notes is not None:
        sets.append("notes = ?")
        params.append(notes)
    if contacted is not None:
        sets.append("contacted = ?")  # once: PostgreSQL refuses a column set twice
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
    """The dashboard's figures, read from the counters the writes keep (migration
    LEAD_COUNTERS): a few dozen rows whatever the number of leads."""
    by_class: dict[str, int] = {}
    matrix: dict[str, dict[str, int]] = {}
    for channel, klass, n in db.rows(
        "SELECT channel, classification, sum(n) FROM lead_counts"
        " GROUP BY channel, classification HAVING sum(n) > 0"
    ):
        by_class[str(klass)] = by_class.get(str(klass), 0) + int(n)
        matrix.setdefault(str(channel), {})[str(klass)] = int(n)
    per_day = [
        {"day": str(day), "leads": int(n)}
        for day, n in db.rows("SELECT day, n FROM lead_days ORDER BY day DESC LIMIT 30")
    ]
    funnel = {
        str(channel): {"new": int(total), "contacted": int(engaged or 0), "won": int(won or 0)}
        for channel, total, engaged, won in db.rows(
            "SELECT channel, sum(n),"
            " sum(n) FILTER (WHERE contacted = 1 OR status IN ('contacted', 'won', 'lost')),"
            " sum(n) FILTER (WHERE status = 'won') FROM lead_counts GROUP BY channel"
            " HAVING sum(n) > 0"
        )
    }
    median = median_first_reply_ms(db)
    return {
        "total": sum(by_class.values()),
        "porClase": {k: by_class.get(k, 0) for k in ("caliente", "tibio", "frio")},
        "canalPorClase": matrix,
        "porDia": list(reversed(per_day)),
        "embudo": funnel,
        "medianaPrimeraRespuestaSegundos": None if median is None else round(median / 1000, 2),
    }


def median_first_reply_ms(db: Database) -> int | None:
    """The time (ms) from a real conversation's first message to its first answer, the
    middle one of all (the upper of two): a walk over the distinct times, not the
    conversations."""
    answered = int(db.scalar("SELECT coalesce(sum(n), 0) FROM first_reply_times"))
    if not answered:
        return None
    ms = db.scalar(
        "SELECT ms FROM (SELECT ms, sum(n) OVER (ORDER BY ms) AS upto FROM first_reply_times) t"
        " WHERE upto > ? ORDER BY ms LIMIT 1",
        (answered // 2,),
    )
    return int(ms)

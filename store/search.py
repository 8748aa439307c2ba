"""Substring search over the leads: their own fields (name, phone, e-mail, service, area,
notes) and what people wrote in their conversations, accent- and case-blind, through an
index (issue 17): SQLite's FTS5 with the trigram tokenizer (tables `lead_search`,
`message_search`), PostgreSQL's pg_trgm GIN indexes (`leads_search`, `messages_search`), both
kept by the transactions that write the rows (store/migrations.py LEAD_SEARCH).

A search reads matches newest first and stops as soon as it has what it needs: the leads
whose own fields match (newest lead first), then those whose conversations mention the text
(the newest such message first), each lead once. It never counts every match of a common
word: past `COUNT_CAP` leads the total is "more than" that. Three characters at least, the
size of a trigram."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .db import Database
from .sandbox import key_clause
from .text import fold

MIN_CHARS = 3
COUNT_CAP = 1000  # leads counted exactly; beyond, "more than 1000"
BATCH = 200  # matches read at a time, newest first
_NEWEST = 2**62  # above every id

# PostgreSQL: the expression of the `leads_search` index, as written there (the planner
# uses the index only for the very same expression).
_PG_LEAD_TEXT = (
    "ia_fold(coalesce(l.name, '') || E'\\x01' || coalesce(l.phone, '') || E'\\x01'"
    " || coalesce(l.email, '') || E'\\x01' || coalesce(l.service, '') || E'\\x01'"
    " || coalesce(l.area, '') || E'\\x01' || coalesce(l.notes, ''))"
)
_REAL_CONVERSATION = f"NOT {key_clause('c.external_key')}"


class SearchTooShort(ValueError):
    """Fewer than MIN_CHARS characters: no trigram to look up."""


def usable(text: str) -> str:
    """The text to search for, or SearchTooShort."""
    text = " ".join(text.split())
    if len(text) < MIN_CHARS:
        raise SearchTooShort(f"la búsqueda necesita al menos {MIN_CHARS} caracteres")
    return text


def _sources(backend: str, where: str) -> tuple[str, str]:
    """The two queries, each giving (lead id, match id) newest first below a match id, with
    the lead filter `where` (on `l`): by the lead's fields, by its conversations."""
    if backend == "sqlite":
        return (
            "SELECT l.id, lead_search.rowid FROM lead_search JOIN leads l"
            " ON l.id = lead_search.rowid WHERE lead_search MATCH ? AND lead_search.rowid < ?"
            f" AND {where} ORDER BY lead_search.rowid DESC LIMIT ?",
            "SELECT c.lead_id, message_search.rowid FROM message_search"
            " JOIN messages m ON m.id = message_search.rowid"
            " JOIN conversations c ON c.id = m.conversation_id JOIN leads l ON l.id = c.lead_id"
            " WHERE message_search MATCH ? AND message_search.rowid < ?"
            f" AND {_REAL_CONVERSATION} AND {where} ORDER BY message_search.rowid DESC LIMIT ?",
        )
    return (
        f"SELECT l.id, l.id FROM leads l WHERE {_PG_LEAD_TEXT} LIKE ? AND l.id < ?"
        f" AND {where} ORDER BY l.id DESC LIMIT ?",
        "SELECT c.lead_id, m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " JOIN leads l ON l.id = c.lead_id WHERE m.role = 'user' AND ia_fold(m.content) LIKE ?"
        f" AND m.id < ? AND {_REAL_CONVERSATION} AND {where} ORDER BY m.id DESC LIMIT ?",
    )


def _pattern(backend: str, text: str) -> str:
    """What the index is asked: an FTS5 phrase (the tokenizer folds it as it folded the
    rows), or a LIKE pattern of the folded text with its wildcards escaped."""
    if backend == "sqlite":
        return '"' + text.replace('"', '""') + '"'
    escaped = fold(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matching_leads(
    db: Database, text: str, where: str, params: Sequence[Any], wanted: int
) -> list[int]:
    """Up to `wanted` ids of the leads matching `text` (see `usable`) and the filter, in the
    order of the module's docstring."""
    pattern = _pattern(db.backend, text)
    found: list[int] = []
    seen: set[int] = set()
    for sql in _sources(db.backend, where):
        below = _NEWEST
        while len(found) < wanted:
            batch = max(BATCH, wanted - len(found))
            rows = db.rows(sql, [pattern, below, *params, batch])
            for lead_id, _match in rows:
                if lead_id not in seen:
                    seen.add(lead_id)
                    found.append(lead_id)
            if len(rows) < batch:
                break
            below = rows[-1][1]
    return found[:wanted]


def matches_clause(backend: str, text: str) -> tuple[str, list[Any]]:
    """SQL true for a lead `l` matching `text`, and its parameters: for reading every
    match at once (the CSV export), in no particular order."""
    pattern = _pattern(backend, text)
    if backend == "sqlite":
        return (
            "(l.id IN (SELECT rowid FROM lead_search WHERE lead_search MATCH ?)"
            " OR l.id IN (SELECT c.lead_id FROM message_search"
            " JOIN messages m ON m.id = message_search.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            f" WHERE message_search MATCH ? AND {_REAL_CONVERSATION}))",
            [pattern, pattern],
        )
    return (
        f"({_PG_LEAD_TEXT} LIKE ? OR l.id IN (SELECT c.lead_id FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id WHERE m.role = 'user'"
        f" AND ia_fold(m.content) LIKE ? AND {_REAL_CONVERSATION}))",
        [pattern, pattern],
    )

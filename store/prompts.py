"""Versions of what the model is told, edited from the dashboard: the business's rules
(`prompt`) and the commercial strategy (`strategy`, a JSON document). The newest of each
kind is in force; every version is kept, so any can be restored."""

from __future__ import annotations

from typing import Any

from .db import Database, utc_now


def current(db: Database, kind: str = "prompt") -> dict[str, Any] | None:
    return db.one(
        "SELECT id, text, note, created_at FROM prompt_versions WHERE kind = ?"
        " ORDER BY id DESC LIMIT 1",
        (kind,),
    )


def get(db: Database, version_id: int, kind: str = "prompt") -> dict[str, Any] | None:
    return db.one(
        "SELECT id, text, note, created_at FROM prompt_versions WHERE id = ? AND kind = ?",
        (version_id, kind),
    )


def add(db: Database, text: str, note: str | None = None, kind: str = "prompt") -> int:
    return db.insert(
        "INSERT INTO prompt_versions (text, note, created_at, kind) VALUES (?, ?, ?, ?)",
        (text, note, utc_now(), kind),
    )


def history(db: Database, kind: str = "prompt", limit: int = 20) -> list[dict[str, Any]]:
    return db.all(
        "SELECT id, note, created_at, length(text) AS chars FROM prompt_versions"
        " WHERE kind = ? ORDER BY id DESC LIMIT ?",
        (kind, limit),
    )

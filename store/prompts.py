"""Versions of the business's rules for the model, edited from the dashboard."""

from __future__ import annotations

from typing import Any

from .db import Database, utc_now


def current(db: Database) -> dict[str, Any] | None:
    return db.one("SELECT id, text, note, created_at FROM prompt_versions ORDER BY id DESC LIMIT 1")


def get(db: Database, version_id: int) -> dict[str, Any] | None:
    return db.one(
        "SELECT id, text, note, created_at FROM prompt_versions WHERE id = ?", (version_id,)
    )


def add(db: Database, text: str, note: str | None = None) -> int:
    return db.insert(
        "INSERT INTO prompt_versions (text, note, created_at) VALUES (?, ?, ?)",
        (text, note, utc_now()),
    )


def history(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    return db.all(
        "SELECT id, note, created_at, length(text) AS chars FROM prompt_versions"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    )

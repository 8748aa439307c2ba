"""The sandbox: where the demo and the channel simulation write. Its people have conversation
keys that start with `sim:`, their leads carry `sandbox = 1`, and real leads never look there
(no list, statistics, CSV, alert or follow-up). The owner sees it and empties it here."""

from __future__ import annotations

from typing import Any

from .db import Database

KEY_PREFIX = "sim:"
MAX_SENDS = 100
MAX_MESSAGES = 200


def is_sandbox_key(external_key: str) -> bool:
    return external_key.startswith(KEY_PREFIX)


def key_clause(column: str) -> str:
    """SQL that is true when `column`, a conversation's external key, is in the sandbox.
    substr, not LIKE: SQLite's LIKE ignores case, and "SIM:x" is nobody's sandbox key."""
    return f"substr({column}, 1, {len(KEY_PREFIX)}) = '{KEY_PREFIX}'"


_IS_SANDBOX = key_clause("c.external_key")


def summary(db: Database, external_key: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """What simulated people wrote and were answered (`mensajes`, oldest first) and, on
    WhatsApp/Instagram, the sends the notifier kept in the sandbox (`envios`, newest first).
    With `external_key`, only that simulated person's conversations."""
    if external_key is not None and not is_sandbox_key(external_key):
        return {"envios": [], "mensajes": []}
    only, params = (
        ("", ()) if external_key is None else (" AND c.external_key = ?", (external_key,))
    )
    sends = db.all(
        "SELECT o.id, o.conversation_id, o.channel, o.recipient, o.kind, o.body, o.status"
        " FROM outbox o JOIN conversations c ON c.id = o.conversation_id"
        f" WHERE {_IS_SANDBOX}{only} AND o.kind != 'read' ORDER BY o.id DESC LIMIT ?",
        (*params, MAX_SENDS),
    )
    chats = db.all(
        "SELECT m.conversation_id, c.channel, m.role, m.content, m.created_at"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE {_IS_SANDBOX}{only} ORDER BY m.id DESC LIMIT ?",
        (*params, MAX_MESSAGES),
    )
    return {"envios": sends, "mensajes": list(reversed(chats))}


def clear(db: Database) -> int:
    """Delete the sandbox in one transaction: every simulated conversation (its messages and
    sends go with it, ON DELETE CASCADE) and every sandbox lead left without a conversation
    (its history, identities, claims and follow-ups cascade; its owner notifications are
    deleted). A sandbox lead that still has a real conversation (linked before the sandbox
    existed) is kept: a real customer is never deleted here. Returns the conversations
    removed."""
    with db.transaction():
        removed = db.changes(f"DELETE FROM conversations WHERE {key_clause('external_key')}")
        orphans = (
            "SELECT l.id FROM leads l WHERE l.sandbox = 1"
            " AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.lead_id = l.id)"
        )
        db.execute(f"DELETE FROM owner_notifications WHERE lead_id IN ({orphans})")
        db.execute(f"DELETE FROM leads WHERE id IN ({orphans})")
    return removed

"""Messages of a conversation: inbound user messages and the assistant's replies.

An inbound message is a row (status `pending`) before any work on it starts; its reply is
written in the same transaction that marks it `handled`, and a unique index allows at most
one reply per inbound message, so reprocessing after a crash never answers twice."""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from .db import Database, utc_now


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    channel: str
    role: str
    content: str
    status: str | None
    attempts: int
    created_at: str
    external_id: str | None = None
    kind: str = "text"


@dataclass(frozen=True)
class ReplyRecord:
    """What the brain answered, with where it came from and what it cost."""

    content: str
    source: str  # "llm" | "offline" | "fallback"
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    brain_lead: str | None = None  # what the model said of the lead (JSON), for the classifier


@dataclass(frozen=True)
class Turn:
    """A reply the classifier has not yet taken into account, with what led to it."""

    reply_id: int
    conversation_id: int
    channel: str
    source: str | None
    brain_lead: str | None
    lines: list[tuple[str, str]]  # the assistant line before, then the user's lines answered
    user_at: str | None  # when the person last wrote, as of this turn
    line_ids: list[int] = field(default_factory=list)  # each line's message id


_COLUMNS = (
    "id, conversation_id, channel, role, content, status, attempts, created_at, external_id, kind"
)


def _from_row(row: dict[str, Any]) -> StoredMessage:
    return StoredMessage(**row)


def add_inbound(
    db: Database,
    conversation_id: int,
    channel: str,
    content: str,
    external_id: str | None = None,
    *,
    provider_ts: int | None = None,
    kind: str = "text",
    attempts: int = 0,
) -> StoredMessage | None:
    """Store a user's message as pending; None when (channel, external_id) is a duplicate.
    `attempts=1`: its first attempt is counted now (a web message handed over at once)."""
    now = utc_now()
    new_id = db.returning(
        "INSERT INTO messages (conversation_id, channel, role, content, external_id,"
        " status, created_at, provider_ts, kind, attempts)"
        " VALUES (?, ?, 'user', ?, ?, 'pending', ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",  # only (channel, external_id) is unique here
        (conversation_id, channel, content, external_id, now, provider_ts, kind, attempts),
    )
    if new_id is None:
        return None
    return StoredMessage(
        int(new_id),
        conversation_id,
        channel,
        "user",
        content,
        "pending",
        attempts,
        now,
        external_id,
        kind,
    )


def start_attempt(db: Database, message_id: int) -> int | None:
    """Count an attempt before the work, so a message that crashes us is noticed.

    Returns the attempt number, or None when the message is no longer pending."""
    attempts = db.returning(
        "UPDATE messages SET attempts = attempts + 1 WHERE id = ? AND status = 'pending'"
        " RETURNING attempts",
        (message_id,),
    )
    return None if attempts is None else int(attempts)


def record_reply(
    db: Database, conversation_id: int, channel: str, inbound_ids: Sequence[int], reply: ReplyRecord
) -> int | None:
    """Write the reply and mark its inbound message(s) handled, in one transaction.

    Returns the reply's id, or None when these messages were already answered."""
    with db.transaction():
        marked = db.changes(
            f"UPDATE messages SET status = 'handled' WHERE status = 'pending'"
            f" AND id IN ({','.join('?' * len(inbound_ids))})",
            tuple(inbound_ids),
        )
        if not marked:
            return None
        reply_id = db.insert(
            "INSERT INTO messages (conversation_id, channel, role, content, reply_to, source,"
            " model, prompt_tokens, completion_tokens, created_at, brain_lead)"
            " VALUES (?, ?, 'assistant', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                channel,
                reply.content,
                max(inbound_ids),
                reply.source,
                reply.model,
                reply.prompt_tokens,
                reply.completion_tokens,
                utc_now(),
                reply.brain_lead,
            ),
        )
    return reply_id


def is_pending(db: Database, message_id: int) -> bool:
    """Whether an inbound message still waits for its turn (not answered, held or failed)."""
    found = db.scalar("SELECT 1 FROM messages WHERE id = ? AND status = 'pending'", (message_id,))
    return found is not None


def pending_before(db: Database, conversation_id: int, message_id: int) -> list[StoredMessage]:
    """The conversation's inbound messages still pending that come before `message_id` in
    its order (the provider's time, then arrival, as `pending_inbound`), oldest first; none
    when `message_id` itself is no longer pending."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND status = 'pending'"
        " ORDER BY provider_ts NULLS FIRST, id",
        (conversation_id,),
    )
    for at, row in enumerate(rows):
        if int(str(row["id"])) == message_id:
            return [_from_row(r) for r in rows[:at]]
    return []


def reply_to(db: Database, inbound_id: int) -> StoredMessage | None:
    row = db.one(f"SELECT {_COLUMNS} FROM messages WHERE reply_to = ?", (inbound_id,))
    return _from_row(row) if row else None


def history(db: Database, conversation_id: int, limit: int = 200) -> list[StoredMessage]:
    """The conversation's last `limit` messages, oldest first."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
        (conversation_id, limit),
    )
    return [_from_row(r) for r in reversed(rows)]


def recent_lines(db: Database, conversation_id: int, limit: int) -> list[tuple[str, str]]:
    """(role, content) of the last `limit` messages worth showing a model, oldest first."""
    rows = db.rows(
        "SELECT role, content FROM messages WHERE conversation_id = ?"
        " AND (status IS NULL OR status != 'failed') ORDER BY id DESC LIMIT ?",
        (conversation_id, limit),
    )
    return [(str(role), str(content)) for role, content in reversed(rows)]


def last_user_message_at(db: Database, conversation_id: int) -> str | None:
    """When the person last wrote to us (opens Meta's 24 h customer-service window)."""
    value = db.scalar(
        "SELECT max(created_at) FROM messages WHERE conversation_id = ? AND role = 'user'",
        (conversation_id,),
    )
    return None if value is None else str(value)


def mark_failed(db: Database, message_id: int) -> None:
    """A message that will not be answered (its web request was turned away)."""
    db.execute(
        "UPDATE messages SET status = 'failed' WHERE id = ? AND status = 'pending'", (message_id,)
    )


def pending_count(db: Database, channel: str) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM messages WHERE status = 'pending' AND channel = ?", (channel,)
        )
    )


def pending_inbound(
    db: Database,
    skip: Container[int] = (),
    *,
    new_conversations: int | None = None,
    open_conversations: Container[int] = (),
    left: set[int] | None = None,
) -> list[StoredMessage]:
    """Every inbound message not yet answered, oldest first: what a restart must pick up.

    Ids in `skip` (already queued) are left out before their rows are read, so a sweep over
    a backlog costs an index scan, not the backlog's texts; with `new_conversations`, only
    that many conversations outside `open_conversations` are read; the others go in `left`."""
    chosen: list[int] = []
    new: set[int] = set()
    # NULLS FIRST: SQLite's order for a web message (no provider time), said for PostgreSQL.
    for row in db.rows(
        "SELECT id, conversation_id FROM messages WHERE status = 'pending'"
        " ORDER BY conversation_id, provider_ts NULLS FIRST, id"
    ):
        message_id, conversation_id = int(str(row[0])), int(str(row[1]))
        if message_id in skip:
            continue
        if new_conversations is not None and conversation_id not in open_conversations:
            if conversation_id not in new:
                if len(new) >= new_conversations:
                    if left is not None:
                        left.add(conversation_id)
                    continue
                new.add(conversation_id)
        chosen.append(message_id)
    found: list[StoredMessage] = []
    for at in range(0, len(chosen), 500):
        chunk = chosen[at : at + 500]
        rows = db.all(
            f"SELECT {_COLUMNS} FROM messages WHERE id IN ({','.join('?' * len(chunk))})",
            tuple(chunk),
        )
        by_id = {int(str(r["id"])): r for r in rows}
        found += [_from_row(by_id[i]) for i in chunk if i in by_id]
    return found


def unclassified(db: Database, limit: int = 200) -> list[int]:
    """Replies whose turn the classifier has not taken into account, oldest first."""
    rows = db.rows(
        "SELECT id FROM messages WHERE role = 'assistant' AND classified_at IS NULL"
        " ORDER BY id LIMIT ?",
        (limit,),
    )
    return [int(str(row[0])) for row in rows]


def turn(db: Database, reply_id: int) -> Turn | None:
    """The turn a reply closed; None when it is already classified (or gone)."""
    reply = db.one(
        "SELECT id, conversation_id, channel, source, brain_lead, reply_to FROM messages"
        " WHERE id = ? AND role = 'assistant' AND classified_at IS NULL",
        (reply_id,),
    )
    if reply is None:
        return None
    rows = db.rows(
        "SELECT role, content, created_at, id FROM messages WHERE conversation_id = ? AND id <= ?"
        " AND id != ? AND (status IS NULL OR status != 'failed') ORDER BY id DESC LIMIT 40",
        (reply["conversation_id"], reply["reply_to"] or reply_id, reply_id),
    )
    lines: list[tuple[str, str]] = []
    line_ids: list[int] = []
    user_at: str | None = None
    for role, content, created_at, message_id in rows:
        lines.append((str(role), str(content)))
        line_ids.append(int(message_id))
        if role == "user" and user_at is None:
            user_at = str(created_at)
        if role == "assistant":
            break  # the question these user lines answer
    lines.reverse()
    line_ids.reverse()
    return Turn(
        reply_id,
        int(reply["conversation_id"]),
        str(reply["channel"]),
        reply["source"],
        reply["brain_lead"],
        lines,
        user_at,
        line_ids,
    )


def mark_classified(db: Database, reply_id: int) -> None:
    db.execute("UPDATE messages SET classified_at = ? WHERE id = ?", (utc_now(), reply_id))


def last_lines(db: Database, conversation_id: int, limit: int) -> list[tuple[str, str, str]]:
    """(role, content, created_at) of the last messages, oldest first: for the owner."""
    rows = db.rows(
        "SELECT role, content, created_at FROM messages WHERE conversation_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (conversation_id, limit),
    )
    return [(str(r), str(c), str(t)) for r, c, t in reversed(rows)]


def hold(db: Database, inbound_ids: Sequence[int]) -> int:
    """Mark messages handled without a bot reply (a person has the conversation)."""
    return db.changes(
        f"UPDATE messages SET status = 'handled' WHERE status = 'pending'"
        f" AND id IN ({','.join('?' * len(inbound_ids))})",
        tuple(inbound_ids),
    )


def add_human_reply(db: Database, conversation_id: int, channel: str, text: str) -> int:
    """A reply written by a person from the dashboard (never classified as a bot turn)."""
    now = utc_now()
    return db.insert(
        "INSERT INTO messages (conversation_id, channel, role, content, source, created_at,"
        " classified_at) VALUES (?, ?, 'assistant', ?, 'human', ?, ?)",
        (conversation_id, channel, text, now, now),
    )

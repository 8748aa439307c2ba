"""The store's guarantees: migrations, one reply per message, duplicates ignored."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from store import conversations, leads, maintenance, messages, outbox
from store.db import migrate, open_database
from store.leads import LeadFields
from store.messages import ReplyRecord
from store.migrations import MIGRATIONS


def test_migrations_apply_once_and_set_user_version(tmp_path: Path) -> None:
    db = open_database(tmp_path / "x" / "leads.db")
    assert db.schema_version() == len(MIGRATIONS) == 9
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA foreign_keys") == 1
    db.close()
    again = open_database(tmp_path / "x" / "leads.db")
    assert migrate(again) == 9
    tables = {r["name"] for r in again.all("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "messages", "leads", "outbox", "delivery_statuses"} <= tables
    again.close()


def test_a_version_1_database_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = apsw.Connection(str(path))
    with old:
        old.execute(MIGRATIONS[0])
        old.execute("PRAGMA user_version = 1")
        old.execute(
            "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
            " VALUES ('web', 's', 'x', 'x')"
        )
        old.execute(
            "INSERT INTO messages (conversation_id, channel, role, content, status,"
            " created_at) VALUES (1, 'web', 'user', 'hola', 'pending', 'x')"
        )
    old.close()
    db = open_database(path)
    assert db.schema_version() == 9
    assert [(m.content, m.status) for m in messages.pending_inbound(db)] == [("hola", "pending")]
    assert db.scalar("SELECT kind FROM messages") == "text"


def test_a_version_2_outbox_keeps_its_rows_and_learns_templates(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = apsw.Connection(str(path))
    with old:
        old.execute(MIGRATIONS[0])
        old.execute(MIGRATIONS[1])
        old.execute("PRAGMA user_version = 2")
        old.execute(
            "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
            " VALUES ('whatsapp', '569', 'x', 'x')"
        )
        old.execute(
            "INSERT INTO outbox (conversation_id, channel, recipient, kind, body,"
            " next_attempt_at, created_at, updated_at)"
            " VALUES (1, 'whatsapp', '569', 'text', 'hola', 'x', 'x', 'x')"
        )
        with pytest.raises(apsw.ConstraintError):
            old.execute(
                "INSERT INTO outbox (conversation_id, channel, recipient, kind, body,"
                " next_attempt_at, created_at, updated_at)"
                " VALUES (1, 'whatsapp', '569', 'template', '{}', 'x', 'x', 'x')"
            )
    old.close()
    db = open_database(path)
    assert db.all("SELECT id, body, status FROM outbox") == [
        {"id": 1, "body": "hola", "status": "pending"}
    ]
    outbox.enqueue(db, 1, "whatsapp", "569", "template", ['{"name": "seguimiento"}'])
    assert db.scalar("SELECT count(*) FROM outbox") == 2
    assert db.all("PRAGMA foreign_key_check") == []


def test_a_message_is_answered_at_most_once(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "web", "s")
    inbound = messages.add_inbound(db, conv.id, "web", "hola")
    assert inbound is not None
    first = messages.record_reply(db, conv.id, "web", [inbound.id], ReplyRecord("uno", "offline"))
    second = messages.record_reply(db, conv.id, "web", [inbound.id], ReplyRecord("dos", "offline"))
    assert first is not None and second is None
    assert [m.content for m in messages.history(db, conv.id)] == ["hola", "uno"]
    assert messages.pending_inbound(db) == []


def test_duplicate_external_ids_are_ignored(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "whatsapp", "56911112222")
    assert messages.add_inbound(db, conv.id, "whatsapp", "hola", external_id="wamid.1")
    assert messages.add_inbound(db, conv.id, "whatsapp", "hola", external_id="wamid.1") is None
    assert db.scalar("SELECT count(*) FROM messages") == 1


def test_pending_messages_survive_reopening(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "web", "s")
    messages.add_inbound(db, conv.id, "web", "uno")
    messages.add_inbound(db, conv.id, "web", "dos")
    db.close()
    db = open_database(tmp_path / "leads.db")
    assert [m.content for m in messages.pending_inbound(db)] == ["uno", "dos"]


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "web", "s")
    with pytest.raises(RuntimeError), db.transaction():
        messages.add_inbound(db, conv.id, "web", "uno")
        raise RuntimeError("crash mid-transaction")
    assert db.scalar("SELECT count(*) FROM messages") == 0


def _classified(fields: LeadFields, klass: str) -> leads.Classification:
    return leads.Classification(fields, None, klass, 10, ["r"], [])


def test_one_lead_per_person_across_channels_and_resets(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    web = conversations.open_conversation(db, "web", "s")
    assert leads.resolve(db, web.id, "web", "s", LeadFields()) is None
    lead = leads.create(db, web.id, "web", "s")
    change = leads.apply(
        db,
        lead,
        _classified(LeadFields(name="Ana", phone="+56987654321"), "tibio"),
        reply_id=None,
        user_at="2026-01-01T10:00:00.000Z",
    )
    assert change.before is None and change.changed
    # A reset opens a new conversation; the session identity finds the same lead.
    assert conversations.close_conversation(db, "web", "s")
    fresh = conversations.open_conversation(db, "web", "s")
    assert fresh.id != web.id and fresh.lead_id is None
    found = leads.resolve(db, fresh.id, "web", "s", LeadFields())
    assert found is not None and found.id == lead.id
    # The same phone on WhatsApp links to the same lead.
    wa = conversations.open_conversation(db, "whatsapp", "56987654321")
    other = leads.create(db, wa.id, "whatsapp", "56987654321")
    merged = leads.resolve(db, wa.id, "whatsapp", "56987654321", LeadFields(phone="+56987654321"))
    assert merged is not None and merged.id == lead.id
    assert leads.get(db, other.id) is None
    assert ("whatsapp", "56987654321") in leads.identities(db, lead.id)
    again = leads.apply(
        db, merged, _classified(merged.fields, "caliente"), reply_id=None, user_at=None
    )
    assert again.before == "tibio" and again.lead.classification == "caliente"
    assert [h[0] for h in leads.history(db, lead.id)] == ["tibio", "caliente"]
    assert again.lead.last_user_message_at == "2026-01-01T10:00:00.000Z"


def test_the_wal_is_checkpointed_off_the_event_loop(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "web", "s")
    for i in range(300):
        messages.add_inbound(db, conv.id, "web", f"mensaje {i} " * 40)
    # No commit checkpointed on its own: the WAL holds every page written so far.
    assert db.statistics().wal_bytes > 500_000
    frames, copied = maintenance.checkpoint(tmp_path / "leads.db")
    assert frames > 100 and copied == frames
    assert db.scalar("SELECT count(*) FROM messages") == 300


def test_a_provider_repeating_a_message_id_does_not_stop_deliveries(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "whatsapp", "569")
    first, second = outbox.enqueue(db, conv.id, "whatsapp", "569", "text", ["uno", "dos"])
    outbox.mark_sent(db, first, "wamid.same")
    outbox.mark_sent(db, second, "wamid.same")
    rows = db.all("SELECT status, provider_message_id, error FROM outbox ORDER BY id")
    assert rows == [
        {"status": "sent", "provider_message_id": "wamid.same", "error": None},
        {
            "status": "sent",
            "provider_message_id": None,
            "error": "id repetido por el proveedor: wamid.same",
        },
    ]

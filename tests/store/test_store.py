"""The store's guarantees: migrations, one reply per message, duplicates ignored. Tests that
take `db` or `store` run on SQLite and on PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from store import conversations, leads, maintenance, messages, outbox
from store.backends import Store
from store.db import Database, migrate, open_database
from store.leads import LeadFields
from store.messages import ReplyRecord
from store.migrations import MIGRATIONS


def test_migrations_apply_once_and_set_user_version(tmp_path: Path) -> None:
    db = open_database(tmp_path / "x" / "leads.db")
    assert db.schema_version() == len(MIGRATIONS) >= 10
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA foreign_keys") == 1
    db.close()
    again = open_database(tmp_path / "x" / "leads.db")
    assert migrate(again) == len(MIGRATIONS)
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
    assert db.schema_version() == len(MIGRATIONS)
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


def test_a_message_is_answered_at_most_once(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    inbound = messages.add_inbound(db, conv.id, "web", "hola")
    assert inbound is not None
    first = messages.record_reply(db, conv.id, "web", [inbound.id], ReplyRecord("uno", "offline"))
    second = messages.record_reply(db, conv.id, "web", [inbound.id], ReplyRecord("dos", "offline"))
    assert first is not None and second is None
    assert [m.content for m in messages.history(db, conv.id)] == ["hola", "uno"]
    assert messages.pending_inbound(db) == []


def test_duplicate_external_ids_are_ignored(db: Database) -> None:
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


def test_pending_before_is_what_a_message_must_wait_for(db: Database) -> None:
    """The conversation's older pending rows, in the provider's order (a late webhook of an
    earlier message still comes first), none once the message itself is answered."""
    conv = conversations.open_conversation(db, "whatsapp", "56911112222")
    other = conversations.open_conversation(db, "whatsapp", "56933334444")
    ids = {}
    for text, ts in [("uno", 10), ("tres", 30), ("dos", 20), ("cuatro", 40)]:
        stored = messages.add_inbound(
            db, conv.id, "whatsapp", text, f"wamid.{text}", provider_ts=ts
        )
        assert stored is not None
        ids[text] = stored.id
    messages.add_inbound(db, other.id, "whatsapp", "de otra persona", "wamid.x", provider_ts=5)
    before = messages.pending_before
    assert [m.content for m in before(db, conv.id, ids["cuatro"])] == ["uno", "dos", "tres"]
    assert [m.content for m in before(db, conv.id, ids["tres"])] == ["uno", "dos"]
    assert before(db, conv.id, ids["uno"]) == []
    messages.record_reply(db, conv.id, "whatsapp", [ids["uno"]], ReplyRecord("hola", "offline"))
    assert [m.content for m in before(db, conv.id, ids["tres"])] == ["dos"]
    messages.record_reply(db, conv.id, "whatsapp", [ids["tres"]], ReplyRecord("ok", "offline"))
    assert before(db, conv.id, ids["tres"]) == []  # answered: nothing to wait for


def test_pending_messages_are_seen_by_the_next_connection(store: Store) -> None:
    with store.connection() as db:
        conv = conversations.open_conversation(db, "web", "s")
        messages.add_inbound(db, conv.id, "web", "uno")
        messages.add_inbound(db, conv.id, "web", "dos")
    with store.connection() as db:  # on PostgreSQL, another connection of the pool may come
        assert [m.content for m in messages.pending_inbound(db)] == ["uno", "dos"]


def test_a_failed_transaction_changes_nothing(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    with pytest.raises(RuntimeError), db.transaction():
        messages.add_inbound(db, conv.id, "web", "uno")
        raise RuntimeError("crash mid-transaction")
    assert db.scalar("SELECT count(*) FROM messages") == 0


def _classified(fields: LeadFields, klass: str) -> leads.Classification:
    return leads.Classification(fields, None, klass, 10, ["r"], [])


def _web_lead_with_phone(db: Database, key: str, name: str, phone: str) -> leads.Lead:
    conv = conversations.open_conversation(db, "web", key)
    lead = leads.create(db, conv.id, "web", key)
    return leads.apply(
        db,
        lead,
        _classified(LeadFields(name=name, phone=phone), "tibio"),
        reply_id=None,
        user_at="2026-01-01T10:00:00.000Z",
    ).lead


def test_a_verified_identity_links_and_a_typed_phone_never_does(db: Database) -> None:
    web = conversations.open_conversation(db, "web", "s")
    assert leads.resolve(db, web.id, "web", "s") is None
    lead = _web_lead_with_phone(db, "s", "Ana", "+56987654321")
    # A reset opens a new conversation; the session identity finds the same lead.
    assert conversations.close_conversation(db, "web", "s")
    fresh = conversations.open_conversation(db, "web", "s")
    assert fresh.id != web.id and fresh.lead_id is None
    found = leads.resolve(db, fresh.id, "web", "s")
    assert found is not None and found.id == lead.id
    # The same phone typed on WhatsApp is a claim: a lead of its own, the first untouched.
    wa = conversations.open_conversation(db, "whatsapp", "56911112222")
    assert leads.resolve(db, wa.id, "whatsapp", "56911112222") is None
    other = leads.create(db, wa.id, "whatsapp", "56911112222")
    other = leads.apply(
        db,
        other,
        _classified(LeadFields(name="Intruso", phone="+56987654321"), "caliente"),
        reply_id=None,
        user_at=None,
    ).lead
    first = leads.get(db, lead.id)
    assert first is not None and first.fields.name == "Ana" and first.classification == "tibio"
    assert not db.scalar(
        "SELECT 1 FROM lead_identities WHERE lead_id = ? AND kind = ? AND value = ?",
        (lead.id, "whatsapp", "56911112222"),
    )
    # The owner sees them as possibly one person (both ways).
    assert [(m.lead_id, m.kind, m.value) for m in leads.possible_matches(db, lead.id)] == [
        (other.id, "phone", "+56987654321")
    ]
    assert [m.lead_id for m in leads.possible_matches(db, other.id)] == [lead.id]


def test_the_owner_merges_by_hand_keeping_both_transcripts_and_an_audit(db: Database) -> None:
    ana = _web_lead_with_phone(db, "a", "Ana", "+56987654321")
    twin = _web_lead_with_phone(db, "b", "Ana Rojas", "+56987654321")
    for key in ("a", "b"):
        conv = conversations.find_active(db, "web", key)
        assert conv is not None
        messages.add_inbound(db, conv.id, "web", f"hola desde {key}")
    with pytest.raises(leads.MergeError):
        leads.merge(db, ana.id, into=ana.id, actor="owner")
    kept = leads.merge(db, twin.id, into=ana.id, actor="owner@127.0.0.1")
    assert kept.fields.name == "Ana" and kept.classification == "tibio"
    assert leads.get(db, twin.id) is None
    transcripts = db.all(
        "SELECT m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE c.lead_id = ? ORDER BY m.id",
        (ana.id,),
    )
    assert [r["content"] for r in transcripts] == ["hola desde a", "hola desde b"]
    audit = leads.merges(db, ana.id)
    assert len(audit) == 1 and audit[0]["actor"] == "owner@127.0.0.1"
    assert audit[0]["merged_lead"]["name"] == "Ana Rojas"
    # The session of the merged lead now finds the kept one.
    conv_b = conversations.open_conversation(db, "web", "b")
    found = leads.resolve(db, conv_b.id, "web", "b")
    assert found is not None and found.id == ana.id
    again = leads.apply(db, kept, _classified(kept.fields, "caliente"), reply_id=None, user_at=None)
    assert again.before == "tibio" and again.lead.classification == "caliente"
    assert [h[0] for h in leads.history(db, ana.id)][-1] == "caliente"


def test_a_visitor_sees_only_what_their_conversation_collected(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "v")
    lead = leads.create(db, conv.id, "web", "v")
    sources = {
        "name": {"how": "typed", "message": None, "conversation": conv.id},
        "phone": {"how": "typed", "message": None, "conversation": conv.id + 1000},
    }
    result = leads.Classification(
        LeadFields(name="Ana", phone="+56987654321"), None, "tibio", 10, [], [], sources
    )
    lead = leads.apply(db, lead, result, reply_id=None, user_at=None).lead
    assert lead.visible_in(conv.id) == LeadFields(name="Ana")
    assert lead.visible_in(conv.id + 1) == LeadFields()


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


def test_a_wal_grown_past_its_bound_starts_over_and_is_cut_back(tmp_path: Path) -> None:
    """Under a stream of commits a passive checkpoint never catches up, so past
    RESTART_FRAMES a RESTART follows and the next commit writes the WAL from its start (it
    had grown to hundreds of MB in a minute of load, and the disk's write-back throttled
    the suite)."""
    db = open_database(tmp_path / "leads.db")
    written = 0
    conv = conversations.open_conversation(db, "web", "s")
    big = "x" * 3000  # about a page a message
    while db.statistics().wal_bytes < (maintenance.RESTART_FRAMES + 500) * 4096:
        with db.transaction():
            for _ in range(50):
                messages.add_inbound(db, conv.id, "web", big)
                written += 1
    frames, copied = maintenance.checkpoint(tmp_path / "leads.db")
    assert (frames, copied > maintenance.RESTART_FRAMES) == (0, True)  # restarted
    messages.add_inbound(db, conv.id, "web", "uno más")  # the WAL starts over
    again, _copied = maintenance.checkpoint(tmp_path / "leads.db")
    assert 0 < again < 100
    assert db.scalar("SELECT count(*) FROM messages") == written + 1  # nothing lost


def test_a_provider_repeating_a_message_id_does_not_stop_deliveries(db: Database) -> None:
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


def test_typed_phones_linking_leads_become_claims_when_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v9.db"
    old = apsw.Connection(str(path))
    with old:
        for migration in MIGRATIONS[:9]:
            old.execute(migration)
        old.execute("PRAGMA user_version = 9")
        old.execute(
            "INSERT INTO leads (id, channel, name, phone, classification, created_at,"
            " updated_at, last_interaction_at) VALUES"
            " (1, 'web', 'Ana', '+56987654321', 'tibio', 'x', 'x', 'x')"
        )
        old.execute(
            "INSERT INTO conversations (id, channel, external_key, lead_id, created_at,"
            " updated_at) VALUES (1, 'web', 's', 1, 'x', 'x'), (2, 'web', 'sim:demo', NULL,"
            " 'x', 'x')"
        )
        old.execute(
            "INSERT INTO lead_identities (kind, value, lead_id, created_at) VALUES"
            " ('web', 's', 1, 'x'), ('phone', '+56987654321', 1, 'x')"
        )
    old.close()
    db = open_database(path)
    assert db.all("SELECT kind, value FROM lead_identities WHERE lead_id = 1") == [
        {"kind": "web", "value": "s"}
    ]
    assert db.all("SELECT kind, value FROM lead_claims WHERE lead_id = 1") == [
        {"kind": "phone", "value": "+56987654321"}
    ]
    lead = leads.get(db, 1)
    assert lead is not None and lead.visible_in(1).name == "Ana" and not lead.sandbox
    # A new conversation typing that phone finds no lead by it.
    conv = conversations.open_conversation(db, "web", "intruso")
    assert leads.resolve(db, conv.id, "web", "intruso") is None


def test_a_transaction_holds_the_write_lock_so_another_writer_cannot_cut_it(
    tmp_path: Path,
) -> None:
    """A deferred transaction that read first failed its first write at once ("database is
    locked") when another process (`ia-comercial backup`) committed meanwhile: found by the
    soak bench. Transactions begin IMMEDIATE."""
    db = open_database(tmp_path / "leads.db")
    other = apsw.Connection(str(tmp_path / "leads.db"))
    other.set_busy_timeout(0)
    conv = conversations.open_conversation(db, "web", "s")
    with db.transaction():
        assert db.scalar("SELECT count(*) FROM messages") == 0  # a read first
        with pytest.raises(apsw.BusyError):  # the other writer waits for us...
            other.execute("INSERT INTO backups (at, ok) VALUES ('x', 1)")
        messages.add_inbound(db, conv.id, "web", "hola")  # ...and our write goes through
    other.execute("INSERT INTO backups (at, ok) VALUES ('x', 1)")  # after us, it may
    assert db.scalar("SELECT count(*) FROM messages") == 1
    other.close()


def test_a_writer_waits_out_another_process_lock_in_short_steps(tmp_path: Path) -> None:
    """Workers share the file: a write that meets another's lock waits for it in steps of
    20 µs to 1 ms (SQLite's own busy timeout sleeps whole milliseconds), and gives up with
    a busy error past its timeout, as the busy timeout did."""
    import threading
    import time

    from store.sqlite import BusyWait

    db = open_database(tmp_path / "leads.db")
    other = apsw.Connection(str(tmp_path / "leads.db"))
    released = threading.Event()

    def hold(seconds: float) -> None:
        other.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        other.execute("COMMIT")
        released.set()

    holder = threading.Thread(target=hold, args=(0.05,))
    holder.start()
    time.sleep(0.01)
    began = time.monotonic()
    db.execute(
        "INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES ('a', 'b', 'c', 'd')"
    )
    waited = time.monotonic() - began
    holder.join()
    assert released.is_set() and waited >= 0.03  # it did wait for the lock
    wait = BusyWait(100)
    assert wait(0) is True and wait(1) is True
    wait.started -= 1  # as if a second had passed
    assert wait(2) is False  # SQLITE_BUSY for the caller
    db.close()
    other.close()

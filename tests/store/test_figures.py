"""The store-wide figures of /metrics, and the state of operations notices, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store import conversations, figures, leads, ops_notices, outbox, owner_notifications
from store.backups import BackupResult, record
from store.db import Database, from_text, to_text
from store.owner_notifications import OwnerMessage

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _lead(db: Database, channel: str, key: str) -> int:
    conversation = conversations.open_conversation(db, channel, key)
    return leads.create(db, conversation.id, channel, key).id


def test_figures_count_leads_conversions_and_delivery_by_channel(db: Database) -> None:
    web = [_lead(db, "web", f"s{i}") for i in range(3)]
    wa = _lead(db, "whatsapp", "56911111111")
    _lead(db, "web", "sim:demo")  # the sandbox counts nowhere
    db.execute("UPDATE leads SET contacted = 1 WHERE id = ?", (web[0],))
    db.execute("UPDATE leads SET status = 'won' WHERE id = ?", (web[1],))
    db.execute("UPDATE leads SET classification = 'caliente' WHERE id = ?", (wa,))
    for lead_id, klass in ((wa, "tibio"), (wa, "caliente"), (web[0], "tibio")):
        db.execute(
            "INSERT INTO lead_classifications (lead_id, classification, score, reasons,"
            " created_at) VALUES (?, ?, 1, '[]', ?)",
            (lead_id, klass, to_text(NOW)),
        )
    conversation = conversations.open_conversation(db, "whatsapp", "56911111111")
    [failed, _pending] = outbox.enqueue(db, conversation.id, "whatsapp", "569", "text", ["a", "b"])
    outbox.mark_failed(db, failed, "HTTP 400")
    alert = owner_notifications.enqueue(db, "email", "alert_hot", "k1", OwnerMessage("s", "t"))
    assert alert is not None
    owner_notifications.schedule_retry(db, alert, "SMTP no disponible", 60)
    ops = owner_notifications.enqueue(db, "webhook", "ops_degraded", "k2", OwnerMessage("s", "t"))
    assert ops is not None
    owner_notifications.mark_failed(db, ops, "webhook: HTTP 500")

    found = figures.read(db, datetime.now(UTC))
    assert found.leads_created == {"web": 3, "whatsapp": 1}
    assert found.leads == {("frio", "web"): 3, ("caliente", "whatsapp"): 1}
    assert found.class_changes == {
        ("whatsapp", "tibio"): 1,
        ("whatsapp", "caliente"): 1,
        ("web", "tibio"): 1,
    }
    assert found.conversions == {
        ("web", "contacted"): 2,  # contacted, and won (a won lead was contacted)
        ("web", "won"): 1,
        ("whatsapp", "contacted"): 0,
        ("whatsapp", "won"): 0,
    }
    assert found.outbox == {("whatsapp", "failed"): 1, ("whatsapp", "pending"): 1}
    assert found.owner_notifications == {("owner", "pending"): 1, ("ops", "failed"): 1}
    assert found.owner_failing == {"owner": 1, "ops": 1}
    # An hour later the one that failed for good no longer counts as failing.
    later = figures.read(db, datetime.now(UTC) + timedelta(hours=2))
    assert later.owner_failing == {"owner": 1}
    assert found.backup_last_success is None and found.backups == {}


def test_figures_know_the_newest_good_backup_and_the_last_attempt(db: Database) -> None:
    good, bad = to_text(NOW - timedelta(hours=30)), to_text(NOW - timedelta(hours=6))
    record(db, BackupResult(None, 10, 5, True, None, good))
    record(db, BackupResult(None, 0, 5, False, "disk full", bad))
    found = figures.read(db, NOW)
    assert found.backup_last_success == from_text(good).timestamp()
    assert found.backup_last_attempt_ok is False
    assert found.backups == {"ok": 1, "failed": 1}


def test_ops_state_and_its_notices_are_recorded_together(db: Database) -> None:
    assert ops_notices.state(db, "node/1") is None
    message = OwnerMessage("degradado", "texto")
    ids = ops_notices.record(
        db,
        "node/1",
        "degraded",
        ["el modelo falló"],
        to_text(NOW),
        [("email", "ops_degraded", message), ("webhook", "ops_degraded", message)],
    )
    assert len(ids) == 2
    state = ops_notices.state(db, "node/1")
    assert state == ops_notices.OpsState("degraded", ("el modelo falló",), 1, to_text(NOW))
    ops_notices.record(db, "node/1", "ok", [], to_text(NOW), [("email", "ops_recovered", message)])
    again = ops_notices.state(db, "node/1")
    assert again is not None and (again.status, again.notices) == ("ok", 2)
    assert ops_notices.state(db, "node/2") is None  # each process has its own
    events = db.rows("SELECT event, transport FROM owner_notifications ORDER BY id")
    assert [tuple(r) for r in events] == [
        ("ops_degraded", "email"),
        ("ops_degraded", "webhook"),
        ("ops_recovered", "email"),
    ]

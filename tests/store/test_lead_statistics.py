"""The dashboard's statistics and /metrics' lead and message figures come from counters the
writes keep (issue 17): on a generated set of leads and conversations, changed, merged and
deleted the ways the suite changes them, they read exactly what a direct count over the
rows says, on both backends, and a store that had data before the counters gets them
counted by the migration."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import pytest

from store import conversations, figures, lead_reports, leads, messages, sandbox
from store.db import Database, open_database
from store.migrations import LEAD_COUNTERS, MIGRATIONS

CHANNELS = ("web", "whatsapp", "instagram")
CLASSES = ("frio", "tibio", "caliente")
STATUSES = ("new", "contacted", "won", "lost")
YEARS = ("2024", "2025")


def direct_statistics(db: Database) -> dict[str, Any]:
    """The figures counted from the rows themselves, as the dashboard did before counters."""
    by_class = dict(
        db.rows("SELECT classification, count(*) FROM leads WHERE sandbox = 0 GROUP BY 1")
    )
    matrix: dict[str, dict[str, int]] = {}
    for channel, klass, n in db.rows(
        "SELECT channel, classification, count(*) FROM leads WHERE sandbox = 0 GROUP BY 1, 2"
    ):
        matrix.setdefault(channel, {})[klass] = int(n)
    per_day = [
        {"day": day, "leads": int(n)}
        for day, n in db.rows(
            "SELECT substr(created_at, 1, 10), count(*) FROM leads WHERE sandbox = 0"
            " GROUP BY 1 ORDER BY 1 DESC LIMIT 30"
        )
    ]
    funnel = {
        channel: {"new": int(total), "contacted": int(engaged), "won": int(won)}
        for channel, total, engaged, won in db.rows(
            "SELECT channel, count(*),"
            " count(*) FILTER (WHERE contacted = 1 OR status IN ('contacted', 'won', 'lost')),"
            " count(*) FILTER (WHERE status = 'won') FROM leads WHERE sandbox = 0 GROUP BY 1"
        )
    }
    times = sorted(
        round(float(s) * 86_400_000)
        for (s,) in db.rows(
            "SELECT julianday(min(a.created_at)) - julianday(min(u.created_at))"
            " FROM messages u JOIN messages a ON a.conversation_id = u.conversation_id"
            " AND a.role = 'assistant' JOIN conversations c ON c.id = u.conversation_id"
            " WHERE u.role = 'user' AND substr(c.external_key, 1, 4) <> 'sim:'"
            " GROUP BY u.conversation_id"
        )
    )
    median = times[len(times) // 2] if times else None
    return {
        "total": sum(int(n) for n in by_class.values()),
        "porClase": {k: int(by_class.get(k, 0)) for k in ("caliente", "tibio", "frio")},
        "canalPorClase": matrix,
        "porDia": list(reversed(per_day)),
        "embudo": funnel,
        "medianaPrimeraRespuestaSegundos": None if median is None else round(median / 1000, 2),
    }


def direct_figures(db: Database) -> dict[str, Any]:
    """/metrics' figures of leads and messages counted from the rows (as they were)."""
    found = {
        "leads": {
            (k, c): int(n)
            for k, c, n in db.rows(
                "SELECT classification, channel, count(*) FROM leads WHERE sandbox = 0"
                " GROUP BY 1, 2"
            )
        },
        "created": dict(
            db.rows("SELECT channel, count(*) FROM leads WHERE sandbox = 0 GROUP BY 1")
        ),
        "conversions": {},
        "messages": {},
    }
    for channel, contacted, won in db.rows(
        "SELECT channel,"
        " sum(CASE WHEN contacted = 1 OR status IN ('contacted', 'won') THEN 1 ELSE 0 END),"
        " sum(CASE WHEN status = 'won' THEN 1 ELSE 0 END) FROM leads WHERE sandbox = 0"
        " GROUP BY channel"
    ):
        found["conversions"][(channel, "contacted")] = int(contacted)
        found["conversions"][(channel, "won")] = int(won)
    for channel, role, n in db.rows(
        "SELECT m.channel, m.role, count(*) FROM messages m JOIN conversations c"
        " ON c.id = m.conversation_id WHERE substr(c.external_key, 1, 4) <> 'sim:'"
        " GROUP BY 1, 2"
    ):
        key = (channel, "in" if role == "user" else "out")
        found["messages"][key] = found["messages"].get(key, 0) + int(n)
    return found


def counted_figures(db: Database) -> dict[str, Any]:
    read = figures.read(db, datetime.now(UTC))
    return {
        "leads": read.leads,
        "created": read.leads_created,
        "conversions": read.conversions,
        "messages": read.messages,
    }


def _message(db: Database, conversation_id: int, role: str, at: str) -> None:
    db.execute(
        "INSERT INTO messages (conversation_id, channel, role, content, created_at)"
        " VALUES (?, 'web', ?, 'hola', ?)",
        (conversation_id, role, at),
    )


def _at(rng: random.Random) -> str:
    return (
        f"2025-{rng.randint(1, 3):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
    )


def generate(db: Database, rng: random.Random, count: int) -> list[int]:
    """`count` people, some in the sandbox, with leads of every kind and conversations of
    a few messages at random times (answered or not, an answer before the question)."""
    lead_ids = []
    for i in range(count):
        channel = rng.choice(CHANNELS)
        key = f"sim:{i}" if rng.random() < 0.15 else f"person-{i}"
        conv = conversations.open_conversation(db, channel, key)
        for _ in range(rng.randint(0, 4)):
            _message(db, conv.id, rng.choice(("user", "assistant")), _at(rng))
        lead = leads.create(db, conv.id, channel, key)
        db.execute(
            "UPDATE leads SET classification = ?, status = ?, contacted = ?, created_at = ?"
            " WHERE id = ?",
            (rng.choice(CLASSES), rng.choice(STATUSES), rng.randint(0, 1), _at(rng), lead.id),
        )
        lead_ids.append(lead.id)
    return lead_ids


def change(db: Database, rng: random.Random, lead_ids: list[int]) -> None:
    """What the suite does to leads afterwards: classify, follow up, delete, merge, empty
    the sandbox, add messages to old conversations."""
    for lead_id in rng.sample(lead_ids, len(lead_ids) // 3):
        db.execute(
            "UPDATE leads SET classification = ? WHERE id = ?", (rng.choice(CLASSES), lead_id)
        )
        lead_reports.update(db, lead_id, status=rng.choice(STATUSES), contacted=rng.random() < 0.5)
    real = [i for i in lead_ids if lead_reports.exists(db, i)]
    for lead_id in real[:5]:
        assert lead_reports.delete(db, lead_id)
    leads.merge(db, real[6], into=real[7], actor="test")
    for (conversation_id,) in db.rows("SELECT id FROM conversations ORDER BY id LIMIT 40"):
        _message(db, int(conversation_id), rng.choice(("user", "assistant")), _at(rng))
    sandbox.clear(db)
    # A message deleted alone (nothing in the suite does yet): the message counts follow.
    # Not a conversation's first: the first-reply times are kept per conversation, whose
    # messages go with it.
    db.execute(
        "DELETE FROM messages WHERE id = (SELECT max(m.id) FROM messages m WHERE EXISTS"
        " (SELECT 1 FROM messages e WHERE e.conversation_id = m.conversation_id"
        " AND e.role = m.role AND e.created_at < m.created_at))"
    )


def test_statistics_are_the_direct_count_after_every_kind_of_write(db: Database) -> None:
    rng = random.Random(17)
    lead_ids = generate(db, rng, 300)
    assert lead_reports.statistics(db) == direct_statistics(db)
    assert counted_figures(db) == direct_figures(db)
    change(db, rng, lead_ids)
    stats = lead_reports.statistics(db)
    assert stats == direct_statistics(db)
    assert counted_figures(db) == direct_figures(db)
    assert counted_figures(db)["messages"]  # there are some
    assert stats["total"] > 200 and stats["medianaPrimeraRespuestaSegundos"] is not None
    assert len(stats["porDia"]) == 30  # the newest 30 days with leads, of some 84


def test_an_empty_store_has_zero_everywhere(db: Database) -> None:
    stats = lead_reports.statistics(db)
    assert stats == direct_statistics(db)
    assert stats["total"] == 0 and stats["medianaPrimeraRespuestaSegundos"] is None


def test_the_migration_counts_what_a_store_held_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "leads.db"
    # A store as it was before the counters (every migration up to theirs), with data.
    monkeypatch.setattr("store.sqlite.MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(LEAD_COUNTERS)])
    db = open_database(path)
    lead_ids = generate(db, random.Random(4), 120)
    assert db.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'lead_counts'") == 0
    expected = direct_statistics(db)
    db.close()
    monkeypatch.undo()
    migrated = open_database(path)
    assert migrated.schema_version() == len(MIGRATIONS)
    assert lead_reports.statistics(migrated) == expected
    assert counted_figures(migrated) == direct_figures(migrated)
    change(migrated, random.Random(5), lead_ids)
    assert lead_reports.statistics(migrated) == direct_statistics(migrated)
    assert counted_figures(migrated) == direct_figures(migrated)
    migrated.close()


def test_a_write_the_counters_refuse_undoes_the_lead_too(tmp_path: Path) -> None:
    """The counters are written in the same transaction as the lead: one without the other
    cannot be committed."""
    db = open_database(tmp_path / "leads.db")
    conv = conversations.open_conversation(db, "web", "p")
    db.connection.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON lead_days BEGIN SELECT raise(ABORT, 'no'); END"
    )
    leads.create(db, conv.id, "web", "p")  # the first lead of its day: an INSERT, allowed
    conv2 = conversations.open_conversation(db, "web", "q")
    try:
        leads.create(db, conv2.id, "web", "q")
    except Exception as exc:  # the store's error for the trigger's refusal
        assert isinstance(exc.__cause__, apsw.ConstraintError)
    else:
        raise AssertionError("the second lead of the day was written without its count")
    assert db.scalar("SELECT count(*) FROM leads") == 1
    assert lead_reports.statistics(db)["total"] == 1
    db.close()


def test_a_reply_is_counted_with_its_message(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    inbound = messages.add_inbound(db, conv.id, "web", "hola")
    assert inbound is not None
    messages.record_reply(db, conv.id, "web", [inbound.id], messages.ReplyRecord("hi", "llm"))
    leads.create(db, conv.id, "web", "s")
    stats = lead_reports.statistics(db)
    assert stats == direct_statistics(db)
    assert isinstance(stats["medianaPrimeraRespuestaSegundos"], float)


def test_unalerted_leads_are_counted_as_a_lead_by_lead_reading_says(db: Database) -> None:
    """/health/detailed's warm and hot leads without an alert (store/leads.py), counted in
    SQL, against each lead and its alerts read one by one."""
    rng = random.Random(9)
    since = "2025-01-01T00:00:00.000Z"
    for i in range(200):
        conv = conversations.open_conversation(db, "web", f"u{i}")
        lead = leads.create(db, conv.id, "web", f"u{i}")
        db.execute(
            "UPDATE leads SET classification = ?, name = ?, phone = ?, status = ?,"
            " last_user_message_at = ? WHERE id = ?",
            (rng.choice(CLASSES), rng.choice(["Ana", "", None]), rng.choice(["+569", None]),
             rng.choice(["new", "new", "won"]), _at(rng).replace("2025", rng.choice(YEARS)),
             lead.id),
        )  # fmt: skip
        for j in range(rng.randint(0, 2)):
            db.execute(
                "INSERT INTO owner_notifications (lead_id, transport, event, dedupe_key,"
                " subject, body_text, status, next_attempt_at, error, created_at, updated_at)"
                " VALUES (?, 'email', ?, ?, 's', 't', ?, 'x', ?, 'x', 'x')",
                (lead.id, rng.choice(["alert_hot", "follow_up"]), f"k{i}-{j}",
                 rng.choice(["pending", "sent", "failed"]), rng.choice([None, f"err {i}"])),
            )  # fmt: skip
    expected: dict[tuple[str, bool, bool, bool], int] = {}
    for r in db.all("SELECT * FROM leads"):
        if not (r["classification"] in ("tibio", "caliente") and r["status"] == "new"
                and not r["contacted"] and r["last_user_message_at"] >= since):  # fmt: skip
            continue
        alerts = [
            n
            for n in db.all("SELECT * FROM owner_notifications WHERE lead_id = ?", (r["id"],))
            if n["event"].startswith("alert_")
        ]
        if any(n["status"] == "sent" for n in alerts):
            continue
        contactable = bool(r["name"] and (r["phone"] or r["email"]))
        key = (r["classification"], contactable, bool(alerts), any(n["error"] for n in alerts))
        expected[key] = expected.get(key, 0) + 1
    counted = {
        (c.classification, c.contactable, c.alerted, c.failed): c.leads
        for c in leads.unalerted_since(db, since)
    }
    assert counted == expected and len(counted) > 6

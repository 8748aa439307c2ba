"""The dashboard's follow-ups due (issue 17) are decided in SQL: on generated leads with
attempts already made, the first page and the total are exactly what the scheduler's own
lead-by-lead decision (`FollowUps.due`) says, on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sales.follow_ups import FollowUps
from sales.owner_messages import SUMMARY_COUNTED, daily_summary
from store import conversations, follow_ups, leads
from store.db import Database, to_text
from tests.conftest import make_settings
from tests.sales.harness import example_business

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def test_the_due_page_is_what_the_scheduler_decides(db: Database, tmp_path: Path) -> None:
    rng = random.Random(21)
    business = example_business()
    rules = business.leadRules.followUps
    for i in range(250):
        conv = conversations.open_conversation(db, "whatsapp", f"p{i}")
        lead = leads.create(db, conv.id, "whatsapp", f"p{i}")
        silent = NOW - timedelta(minutes=rng.randint(0, 4 * 24 * 60), milliseconds=i)
        cycle = to_text(silent)
        db.execute(
            "UPDATE leads SET classification = ?, status = ?, contacted = ?,"
            " last_user_message_at = ? WHERE id = ?",
            (rng.choice(("frio", "tibio", "caliente", "caliente")),
             rng.choice(("new", "new", "new", "won")), int(rng.random() < 0.1), cycle, lead.id),
        )  # fmt: skip
        for number in range(1, rng.randint(0, rules.maxCount + 1) + 1):
            at = silent + timedelta(hours=rng.randint(1, 40))
            follow_ups.record(db, lead.id, cycle, number, "whatsapp", "queued", at=to_text(at))
    planner = FollowUps(db, business, make_settings(tmp_path), lambda: NOW)
    expected = [lead.id for lead in planner.due(NOW)]
    assert 20 < len(expected) < 250  # some due, some not
    for limit, count_to in ((10, 1000), (len(expected) + 5, 1000), (10, 15)):
        page, total = planner.due_page(NOW, limit, count_to)
        assert [lead.id for lead in page] == expected[:limit]
        assert total == min(len(expected), count_to)


def test_the_daily_summary_names_the_longest_silent_and_counts_the_rest(
    db: Database, tmp_path: Path
) -> None:
    business = example_business()
    for i in range(5):
        conv = conversations.open_conversation(db, "web", f"q{i}")
        lead = leads.create(db, conv.id, "web", f"q{i}")
        db.execute(
            "UPDATE leads SET classification = 'caliente', name = ?, last_user_message_at = ?"
            " WHERE id = ?",
            (f"Persona {i}", to_text(NOW - timedelta(days=3, minutes=i)), lead.id),
        )
    planner = FollowUps(db, business, make_settings(tmp_path), lambda: NOW)
    due, total = planner.due_page(NOW, 2, SUMMARY_COUNTED + 1)
    text = daily_summary(business, "2026-03-03", {}, {}, due, total).text
    assert "Seguimientos pendientes: 5" in text and "… y 3 más en el panel" in text
    assert text.index("Persona 4") < text.index("Persona 3") and "Persona 2" not in text
    many = daily_summary(business, "2026-03-03", {}, {}, due, SUMMARY_COUNTED + 1).text
    assert f"Seguimientos pendientes: más de {SUMMARY_COUNTED}" in many
    assert daily_summary(business, "2026-03-03", {}, {}, due).text.count("Persona") == 2

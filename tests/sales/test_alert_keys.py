"""Keys that stay unique: lead ids are never reused, so an owner alert's key (alert:<lead>:…)
can never name a new lead after merges and deletions, and every hot lead alerts once."""

from __future__ import annotations

from pathlib import Path

from sales.settings import Settings
from store import lead_reports, leads

from .harness import Desk

HOT = "me llamo {name}, mi número es {phone}, necesito reparar el aire urgente"


def test_every_hot_lead_alerts_exactly_once_through_merges_and_deletions(
    tmp_path: Path,
) -> None:
    desk = Desk.open(tmp_path, settings=Settings(webhook_url="http://127.0.0.1:9/alerts"))
    people = iter(
        [("Ana", "+56911110001"), ("Beto", "+56911110002"), ("Caro", "+56911110003"),
         ("Dani", "+56911110004"), ("Eli", "+56911110005"), ("Fran", "+56911110006")]
    )  # fmt: skip

    def hot(key: str) -> leads.Lead:
        name, phone = next(people)
        lead = desk.say(HOT.format(name=name, phone=phone), key=key)
        assert lead is not None and lead.classification == "caliente"
        return lead

    first, second = hot("a"), hot("b")
    # The owner merges the newest lead into the first: its id is gone, not free.
    leads.merge(desk.db, second.id, into=first.id, actor="test")
    third = hot("c")
    assert third.id not in (first.id, second.id)
    # A deleted lead's id is not given again either.
    assert lead_reports.delete(desk.db, third.id)
    fourth = hot("d")
    assert fourth.id not in (first.id, second.id, third.id)
    fifth = hot("e")
    alerts = desk.db.all(
        "SELECT dedupe_key FROM owner_notifications WHERE event = 'alert_caliente' ORDER BY id"
    )
    # (A deletion is a data-deletion request: the deleted lead's alert goes with it.)
    assert [a["dedupe_key"] for a in alerts] == [
        f"alert:{lead.id}:caliente:webhook" for lead in (first, second, fourth, fifth)
    ]

"""Follow-ups on a clock the test moves: 12 h / 24 h of silence, working hours in
America/Santiago (across midnight and weekends), Meta's 24 h window (text, template or
skip), opt-out, contacted, and the maximum count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sales.business import BusinessConfig, Schedule, WorkingDay
from sales.follow_ups import FollowUps
from sales.hours import is_open, next_opening
from store import follow_ups, lead_reports, leads
from store.db import to_text as iso
from store.leads import Lead
from tests.conftest import make_settings
from tests.sales.harness import WA_ID, Desk, example_business

SANTIAGO = ZoneInfo("America/Santiago")


def local(text: str) -> datetime:
    """A Santiago wall-clock time, e.g. "2026-03-02 10:00" (a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=SANTIAGO)


def schedule(**days: tuple[str, str] | None) -> Schedule:
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return Schedule(
        timezone="America/Santiago",
        workingDays={
            d: WorkingDay(enabled=days.get(d) is not None, **_hours(days.get(d))) for d in names
        },
    )


def _hours(span: tuple[str, str] | None) -> dict[str, str]:
    return {"open": span[0], "close": span[1]} if span else {}


# -- working hours -------------------------------------------------------------------------


def test_hours_in_the_business_time_zone_not_the_servers() -> None:
    week = schedule(monday=("09:00", "19:00"), saturday=("10:00", "14:00"))
    assert is_open(week, local("2026-03-02 09:00"))  # Monday 09:00 Santiago
    assert not is_open(week, local("2026-03-02 08:59"))
    assert not is_open(week, local("2026-03-02 19:00"))
    # 13:30 UTC on that Monday is 10:30 in Santiago (UTC-3 in March): open.
    assert is_open(week, datetime(2026, 3, 2, 13, 30, tzinfo=UTC))
    assert not is_open(week, datetime(2026, 3, 2, 11, 30, tzinfo=UTC))  # 08:30 there
    assert is_open(week, local("2026-03-07 13:59")) and not is_open(week, local("2026-03-07 14:00"))
    assert not is_open(week, local("2026-03-08 12:00"))  # Sunday: closed


def test_hours_across_midnight_and_the_weekend() -> None:
    nights = schedule(friday=("20:00", "02:00"), saturday=("20:00", "02:00"))
    assert is_open(nights, local("2026-03-06 23:30"))  # Friday night
    assert is_open(nights, local("2026-03-07 01:59"))  # Saturday, still Friday's shift
    assert not is_open(nights, local("2026-03-07 02:00"))
    assert is_open(nights, local("2026-03-08 01:00"))  # Sunday, Saturday's shift
    assert not is_open(nights, local("2026-03-08 21:00"))  # Sunday night: closed
    # Waiting for the next opening: Sunday 21:00 -> Friday 20:00.
    assert next_opening(nights, local("2026-03-08 21:00")) == local("2026-03-13 20:00")


def test_whole_days_and_a_daylight_saving_change() -> None:
    always = schedule(**{d: ("00:00", "23:59") for d in ("saturday", "sunday")})
    assert is_open(always, local("2026-04-04 23:59"))
    # Chile goes back an hour on the night of 4-5 April 2026: still open on Sunday.
    assert is_open(always, datetime(2026, 4, 5, 3, 30, tzinfo=UTC))
    assert next_opening(schedule(), local("2026-04-04 12:00")) is None


# -- the follow-up schedule on the real store -----------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def quiet_since(desk: Desk, lead: Lead, at: datetime) -> Lead:
    """Move the person's messages to `at` (what the store would hold had they written then)."""
    desk.db.execute(
        "UPDATE messages SET created_at = ? WHERE role = 'user' AND conversation_id IN"
        " (SELECT id FROM conversations WHERE lead_id = ?)",
        (iso(at), lead.id),
    )
    desk.db.execute("UPDATE leads SET last_user_message_at = ? WHERE id = ?", (iso(at), lead.id))
    moved = leads.get(desk.db, lead.id)
    assert moved is not None
    return moved


def attempts(desk: Desk, lead: Lead) -> list[tuple[int, str, str, str | None]]:
    return [
        (a["number"], a["channel"], a["status"], a["reason"])
        for a in follow_ups.for_lead(desk.db, lead.id)
    ]


def outbox(desk: Desk) -> list[tuple[str, str]]:
    rows = desk.db.all("SELECT kind, body FROM outbox WHERE kind != 'read' ORDER BY id")
    return [(r["kind"], r["body"]) for r in rows]


MONDAY_10 = local("2026-03-02 10:00")


def setup(tmp_path: Path, text: str, channel: str = "whatsapp", **env: str) -> tuple[Desk, Lead]:
    desk = Desk.open(tmp_path, settings=make_settings(tmp_path, **env))
    key = WA_ID if channel == "whatsapp" else "ig-1" if channel == "instagram" else "s"
    lead = desk.say(text, channel=channel, key=key)
    assert lead is not None
    return desk, quiet_since(desk, lead, MONDAY_10)


def run(desk: Desk, clock: Clock, at: datetime, business: BusinessConfig | None = None) -> None:
    clock.now = at
    FollowUps(desk.db, business or example_business(), desk.classifier.settings, clock).tick()


def test_hot_after_12_hours_then_a_template_outside_the_window_then_no_more(
    tmp_path: Path,
) -> None:
    desk, lead = setup(
        tmp_path,
        "Hola, soy Marta y quiero agendar una mantención",
        WHATSAPP_FOLLOWUP_TEMPLATE="seguimiento_lead",
        WHATSAPP_TEMPLATE_PARAMS="nombre,servicio",
    )
    assert lead.classification == "caliente"
    clock = Clock(MONDAY_10)
    run(desk, clock, MONDAY_10 + timedelta(hours=11, minutes=59))
    assert attempts(desk, lead) == []
    # Monday 22:00 is after hours (09:00-19:00): deferred to Tuesday 09:00.
    run(desk, clock, MONDAY_10 + timedelta(hours=12))
    assert attempts(desk, lead) == []
    tuesday_9 = local("2026-03-03 09:00")
    run(desk, clock, tuesday_9)
    run(desk, clock, tuesday_9 + timedelta(minutes=1))  # a second run adds nothing
    assert attempts(desk, lead) == [(1, "whatsapp", "pending", None)]
    [(kind, text)] = outbox(desk)
    assert kind == "text" and text.startswith("Hola Marta, te escribo de Cordillera Clima")
    assert "Mantención preventiva" in text and "STOP" in text
    # 12 h after the first follow-up it is Tuesday 21:00: closed; Wednesday 09:00 is open,
    # and 47 h after her last message Meta allows only a template.
    run(desk, clock, local("2026-03-04 09:00"))
    assert [a[:3] for a in attempts(desk, lead)] == [
        (1, "whatsapp", "pending"),
        (2, "whatsapp", "pending"),
    ]
    kind, spec = outbox(desk)[-1]
    assert kind == "template"
    assert json.loads(spec) == {
        "name": "seguimiento_lead",
        "language": "es",
        "parameters": ["Marta", "Mantención preventiva"],
    }
    run(desk, clock, local("2026-03-09 12:00"))  # days later: the maximum (2) was reached
    assert len(attempts(desk, lead)) == 2


def test_warm_after_24_hours_without_a_template_is_skipped_and_the_owner_reminded(
    tmp_path: Path,
) -> None:
    desk, lead = setup(
        tmp_path,
        "Hola, me llamo Rosa, ¿cuánto cuesta una instalación?",
        SMTP_HOST="127.0.0.1",
        OWNER_EMAIL="dueno@cordilleraclima.cl",
    )
    assert lead.classification == "caliente"  # name + WhatsApp number + a price question
    desk.db.execute("UPDATE leads SET classification = 'tibio' WHERE id = ?", (lead.id,))
    clock = Clock(MONDAY_10)
    run(desk, clock, MONDAY_10 + timedelta(hours=23))
    assert attempts(desk, lead) == []
    run(desk, clock, MONDAY_10 + timedelta(hours=24, minutes=1))  # Tuesday 10:01
    [(number, channel, status, reason)] = attempts(desk, lead)
    assert (number, channel, status) == (1, "whatsapp", "reminded")
    assert reason is not None and "fuera de la ventana de 24 h" in reason
    assert outbox(desk) == []
    subject = desk.db.scalar(
        "SELECT subject FROM owner_notifications WHERE event = 'follow_up_reminder'"
    )
    assert subject == "Nuevo lead Cordillera - Seguimiento pendiente: Rosa"


def test_inside_the_window_a_warm_lead_gets_text_and_instagram_outside_is_skipped(
    tmp_path: Path,
) -> None:
    business = example_business()
    rules = business.leadRules.model_copy(
        update={"followUps": business.leadRules.followUps.model_copy(update={"warmAfterHours": 2})}
    )
    quick = business.model_copy(update={"leadRules": rules})
    desk, lead = setup(tmp_path, "me interesa la mantención", channel="instagram")
    assert lead.classification == "tibio"
    clock = Clock(MONDAY_10)
    run(desk, clock, MONDAY_10 + timedelta(hours=2), quick)
    assert attempts(desk, lead) == [(1, "instagram", "pending", None)]
    run(desk, clock, MONDAY_10 + timedelta(hours=25), quick)  # Tuesday 11:00
    assert attempts(desk, lead)[1][:3] == (2, "instagram", "skipped")
    assert "Instagram: fuera de la ventana" in str(attempts(desk, lead)[1][3])


@pytest.mark.parametrize("case", ["cold", "opted out", "contacted", "won", "lost"])
def test_no_follow_up_for_cold_opted_out_contacted_or_closed(tmp_path: Path, case: str) -> None:
    desk, lead = setup(tmp_path, "hola" if case == "cold" else "quiero agendar una visita")
    assert lead.classification == ("frio" if case == "cold" else "caliente")
    if case == "opted out":
        leads.opt_out(desk.db, lead.id)
    elif case != "cold":
        lead_reports.update(desk.db, lead.id, status=case)
    clock = Clock(MONDAY_10)
    run(desk, clock, local("2026-03-03 12:00"))
    run(desk, clock, local("2026-03-05 12:00"))
    assert attempts(desk, lead) == []


def test_a_web_lead_cannot_be_written_to_so_the_owner_is_reminded(tmp_path: Path) -> None:
    desk, lead = setup(
        tmp_path,
        "Soy Pablo, 987654321, quiero cotizar",
        channel="web",
        SMTP_HOST="127.0.0.1",
        OWNER_EMAIL="dueno@cordilleraclima.cl",
    )
    run(desk, Clock(MONDAY_10), local("2026-03-03 09:30"))
    [(number, channel, status, reason)] = attempts(desk, lead)
    assert (number, channel, status) == (1, "web", "reminded")
    assert reason == "escribió por la web: no tenemos un canal para escribirle"

"""Follow-ups of leads that went quiet, and the owner's daily summary.

Hot leads after `hotAfterHours` (12) of silence, warm after `warmAfterHours` (24), cold never;
none when contacted, won, lost or opted out, nor past `maxCount` (2) per silence. Only in the
business's working hours (its time zone); outside them the follow-up waits. WhatsApp: text
inside Meta's 24 h window, outside it only an approved template, else skipped with the
reason; Instagram: inside the window only. A lead we cannot write to gets a reminder to the
owner instead. Every attempt is a `follow_ups` row, decided and queued in one transaction."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sales.business import BusinessConfig
from sales.owner_messages import (
    SUMMARY_COUNTED,
    SUMMARY_LISTED,
    daily_summary,
    follow_up_reminder,
)
from sales.settings import Settings
from store import conversations, follow_ups, leads, outbox, owner_notifications
from store.db import Database, from_text, to_text
from store.leads import Lead

from .hours import is_open

log = logging.getLogger("notifier.follow_ups")
events = logging.getLogger("business")  # one line per business event, no personal data

WINDOW = timedelta(hours=24)
SUMMARY_CATCH_UP = timedelta(hours=4)


class Action(StrEnum):
    """What a follow-up does now (stored as its plain string)."""

    TEXT = "text"  # a channel text, inside Meta's 24 h window
    TEMPLATE = "template"  # an approved WhatsApp template, outside it
    SKIP = "skip"  # not sent, with the reason
    WAIT = "wait"  # nothing yet


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Plan:
    """What to do for one lead now: `send` (channel text or template), `skip` (with reason),
    or nothing yet (`wait`)."""

    action: Action
    reason: str = ""


def follow_up_text(business: BusinessConfig, lead: Lead, number: int) -> str:
    usted = business.conversationStyle.formality == "usted"
    name = f" {lead.fields.name.split()[0]}" if lead.fields.name else ""
    about = f"tu consulta sobre {lead.fields.service}" if lead.fields.service else "tu consulta"
    if usted:
        about = about.replace("tu consulta", "su consulta")
    who = business.display_name
    if number == 1:
        body = (
            f"Hola{name}, le escribimos de {who} por {about}. ¿Sigue interesado? Con gusto lo"
            " ayudamos a coordinar."
            if usted
            else f"Hola{name}, te escribo de {who} por {about}. ¿Sigues interesado? Si quieres,"
            " te ayudo a coordinar."
        )
    else:
        body = (
            f"Hola{name}, solo queríamos saber si aún podemos ayudarle con {about}."
            if usted
            else f"Hola{name}, solo quería saber si aún te podemos ayudar con {about}."
        )
    stop = (
        " Si prefiere no recibir más mensajes, responda STOP."
        if usted
        else " Si prefieres no recibir más mensajes, responde STOP."
    )
    return body + stop


class FollowUps:
    def __init__(
        self, db: Database, business: BusinessConfig, settings: Settings, clock: Clock
    ) -> None:
        self.db = db
        self.business = business
        self.settings = settings
        self.clock = clock
        self.rules = business.leadRules.followUps

    def delay(self, lead: Lead) -> timedelta:
        hours = (
            self.rules.hotAfterHours
            if lead.classification == "caliente"
            else self.rules.warmAfterHours
        )
        return timedelta(hours=hours)

    def tick(self) -> list[int]:
        """Decide every due follow-up; returns conversations with new sends queued."""
        now = self.clock()
        woke: list[int] = []
        if self.rules.maxCount == 0 or not is_open(self.business.schedule, now):
            self.summary(now)
            return woke
        shortest = min(self.rules.hotAfterHours, self.rules.warmAfterHours)
        for lead in leads.follow_up_candidates(self.db, to_text(now - timedelta(hours=shortest))):
            conversation_id = self._one(lead, now)
            if conversation_id is not None:
                woke.append(conversation_id)
        self.summary(now)
        return woke

    def due(self, now: datetime) -> list[Lead]:
        """Leads whose follow-up is due now (hours aside)."""
        shortest = min(self.rules.hotAfterHours, self.rules.warmAfterHours)
        return [
            lead
            for lead in leads.follow_up_candidates(
                self.db, to_text(now - timedelta(hours=shortest))
            )
            if self._number_due(lead, now) is not None
        ]

    def due_page(self, now: datetime, limit: int, count_to: int) -> tuple[list[Lead], int]:
        """The first `limit` of `due(now)` and how many there are (to `count_to` at most),
        decided in SQL as `_number_due` decides (for the dashboard, whatever the store)."""

        def before(hours: float) -> str:
            return to_text(now - timedelta(hours=hours))

        shortest = min(self.rules.hotAfterHours, self.rules.warmAfterHours)
        return leads.follow_ups_due(
            self.db,
            before(shortest),
            before(self.rules.hotAfterHours),
            before(self.rules.warmAfterHours),
            self.rules.maxCount,
            limit,
            count_to,
        )

    def _number_due(self, lead: Lead, now: datetime) -> int | None:
        cycle = lead.last_user_message_at
        if cycle is None:
            return None
        done = follow_ups.count_in_cycle(self.db, lead.id, cycle)
        if done >= self.rules.maxCount:
            return None
        since = follow_ups.last_in_cycle(self.db, lead.id, cycle) or cycle
        if now - from_text(since) < self.delay(lead):
            return None
        return done + 1

    def _one(self, lead: Lead, now: datetime) -> int | None:
        number = self._number_due(lead, now)
        if number is None:
            return None
        return self.attempt(lead, now, number)

    def send_now(self, lead: Lead, now: datetime) -> dict[str, object]:
        """A follow-up a person asked for from the dashboard: no waiting for the silence,
        the hours or the count, but Meta's window, the template and opt-out still hold."""
        if lead.opted_out_at:
            return {"ok": False, "error": "el cliente pidió no recibir más mensajes"}
        cycle = lead.last_user_message_at or lead.created_at
        lead = replace(lead, last_user_message_at=cycle)
        number = follow_ups.count_in_cycle(self.db, lead.id, cycle) + 1
        conversation_id = self.attempt(lead, now, number)
        attempt = follow_ups.for_lead(self.db, lead.id)[-1]
        return {"ok": True, "conversation": conversation_id, "attempt": attempt}

    def attempt(self, lead: Lead, now: datetime, number: int) -> int | None:
        """Decide and record follow-up `number`; the conversation with a send queued."""
        cycle = lead.last_user_message_at
        assert cycle is not None
        conversation = conversations.latest_for_lead(self.db, lead.id)
        channel = conversation.channel if conversation else "web"
        plan = self.plan(channel, lead, now)
        db = self.db
        with db.transaction():
            if plan.action in (Action.TEXT, Action.TEMPLATE) and conversation is not None:
                body = (
                    follow_up_text(self.business, lead, number)
                    if plan.action == Action.TEXT
                    else self.template_body(lead)
                )
                [outbox_id] = outbox.enqueue(
                    db,
                    conversation.id,
                    channel,
                    conversation.external_key,
                    "text" if plan.action == Action.TEXT else "template",
                    [body],
                )
                follow_ups.record(
                    db,
                    lead.id,
                    cycle,
                    number,
                    channel,
                    "queued",
                    outbox_id=outbox_id,
                    at=to_text(now),
                )
                log.info("follow-up %d for lead %s queued (%s)", number, lead.id, plan.action)
                return conversation.id
            reminder_id = self._remind_owner(lead, plan.reason, number)
            follow_ups.record(
                db,
                lead.id,
                cycle,
                number,
                channel,
                "reminded" if reminder_id else "skipped",
                reason=plan.reason,
                notification_id=reminder_id,
                at=to_text(now),
            )
        log.info("follow-up %d for lead %s skipped: %s", number, lead.id, plan.reason)
        return None

    def plan(self, channel: str, lead: Lead, now: datetime) -> Plan:
        last = lead.last_user_message_at
        inside = last is not None and now - from_text(last) < WINDOW
        if channel == "whatsapp":
            if inside:
                return Plan(Action.TEXT)
            if self.settings.whatsapp_followup_template:
                return Plan(Action.TEMPLATE)
            return Plan(
                Action.SKIP,
                "WhatsApp: fuera de la ventana de 24 h y sin plantilla aprobada"
                " (WHATSAPP_FOLLOWUP_TEMPLATE)",
            )
        if channel == "instagram":
            return (
                Plan(Action.TEXT)
                if inside
                else Plan(Action.SKIP, "Instagram: fuera de la ventana de 24 h de mensajería")
            )
        return Plan(Action.SKIP, "escribió por la web: no tenemos un canal para escribirle")

    def template_body(self, lead: Lead) -> str:
        values = {
            "nombre": lead.fields.name or "",
            "servicio": lead.fields.service or "",
            "negocio": self.business.display_name,
        }
        return json.dumps(
            {
                "name": self.settings.whatsapp_followup_template,
                "language": self.settings.whatsapp_template_language,
                "parameters": [values[p] or "-" for p in self.settings.whatsapp_template_params],
            },
            ensure_ascii=False,
        )

    def _remind_owner(self, lead: Lead, why: str, number: int) -> int | None:
        owner = self.settings.owner_email or self.business.notifications.ownerEmail
        if not (owner and self.settings.email_configured):
            return None
        return owner_notifications.enqueue(
            self.db,
            "email",
            "follow_up_reminder",
            f"reminder:{lead.id}:{lead.last_user_message_at}:{number}",
            follow_up_reminder(self.business, lead, why),
            lead.id,
        )

    def summary(self, now: datetime) -> int | None:
        """At `DAILY_SUMMARY_AT` (08:00) business time, or the first run in the hours after
        it (a restart in the morning still sends it; one in the evening does not), yesterday's
        leads by class and channel and the follow-ups due: once a day."""
        owner = self.settings.owner_email or self.business.notifications.ownerEmail
        at = self.settings.daily_summary_at
        if not (owner and self.settings.email_configured and at):
            return None
        zone = ZoneInfo(self.business.schedule.timezone)
        local = now.astimezone(zone)
        hour, minute = (int(part) for part in at.split(":"))
        start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if not start <= local < start + SUMMARY_CATCH_UP:
            return None
        key = f"summary:{local.date().isoformat()}"
        if owner_notifications.exists(self.db, key):
            return None
        today = local.replace(hour=0, minute=0, second=0, microsecond=0)
        yesterday = today - timedelta(days=1)
        created = leads.created_between(self.db, to_text(yesterday), to_text(today))
        by_class: Counter[str] = Counter(lead.classification for lead in created)
        by_channel = Counter(lead.channel for lead in created)
        # The longest silent, and how many (a store of years may have 100,000s due).
        due, total = self.due_page(now, SUMMARY_LISTED, SUMMARY_COUNTED + 1)
        message = daily_summary(
            self.business, yesterday.date().isoformat(), by_class, by_channel, due, total
        )
        return owner_notifications.enqueue(self.db, "email", "daily_summary", key, message)


class LoggedFollowUps(FollowUps):
    """Follow-ups whose every decision is also a business event."""

    def attempt(self, lead: Lead, now: datetime, number: int) -> int | None:
        conversation_id = super().attempt(lead, now, number)
        outcome = "skipped" if conversation_id is None else "queued"
        events.info(
            "follow-up %d for lead %d %s",
            number,
            lead.id,
            outcome,
            extra={"ctx": {"event": f"follow_up_{outcome}", "lead": lead.id}},
        )
        return conversation_id

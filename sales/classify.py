"""Classifying one answered turn: a library call, no actor, no channel.

For a stored reply not yet classified: extract the fields from the user's lines of that
turn (and from the model's structured answer, when there was one), find or create the
conversation's lead, score it, store the result with its history, and queue the owner's
alert when the lead first becomes hot or warm — all in one transaction that also marks the
reply classified, so a crash repeats nothing and loses nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import phonenumbers

from store import conversations, leads, messages, owner_notifications
from store.db import Database
from store.leads import Change, Classification, Lead
from store.messages import Turn
from store.owner_notifications import OwnerMessage

from .business import BusinessConfig
from .extract import Extracted, Extractor, Reading
from .failpoints import Failpoints
from .fields import Finding, How, settle, sources_as_json, sources_from_json
from .owner_messages import Line, lead_alert, lead_event
from .scoring import RANK, Scorer, Signals, warmer
from .settings import Settings
from .text import normalize

events = logging.getLogger("business")  # one line per business event, no personal data

ALERT_LINES = 6  # last messages quoted in an alert
MODEL_FIELDS = ("name", "phone", "email", "service", "area", "urgency")


@dataclass
class ClassifierStatistics:
    classified: int = 0
    alerts_queued: int = 0
    became_hot: int = 0
    became_warm: int = 0
    opted_out: int = 0
    failed: int = 0  # turns whose classification raised; a sweep classifies them later


@dataclass(frozen=True)
class Classified:
    lead: Lead
    alert_queued: bool  # the owner's alert is in the store: wake the notifier


@dataclass
class LeadClassifier:
    """The rules of one business config (its extractor and scorer are built once)."""

    business: BusinessConfig
    settings: Settings
    stats: ClassifierStatistics = field(default_factory=ClassifierStatistics)
    failpoints: Failpoints = field(default_factory=Failpoints)

    def __post_init__(self) -> None:
        self.extractor = Extractor(self.business)
        self.scorer = Scorer(self.business.leadRules)

    def classify(
        self, db: Database, reply_id: int, read: Reading | None = None
    ) -> Classified | None:
        """Classify one stored turn; None when it was already classified. `read`: the turn's
        lines as the brain already read them (used only if they are the stored turn's)."""
        turn = messages.turn(db, reply_id)
        if turn is None:
            return None
        conversation = conversations.get(db, turn.conversation_id)
        if conversation is None:
            with db.transaction():
                messages.mark_classified(db, reply_id)
            return None
        found = (
            read.extracted
            if read is not None and read.lines == tuple(turn.lines)
            else self.extractor.read_turn(turn.lines)
        )
        model_findings, model_guess = self._model_view(turn)
        self.failpoints.hit("classifier.turn")
        with db.transaction():
            lead = leads.resolve(
                db, conversation.id, conversation.channel, conversation.external_key
            ) or leads.create(db, conversation.id, conversation.channel, conversation.external_key)
            result = _opted_out(
                turn,
                self._decide(
                    lead, turn, conversation.external_key, found, model_findings, model_guess
                ),
            )
            change = leads.apply(db, lead, result, reply_id=reply_id, user_at=turn.user_at)
            self.failpoints.hit("classifier.applied")  # a failure with the lead half-written
            if turn.source == "optout":
                leads.opt_out(db, lead.id)
                self.stats.opted_out += 1
            queued = not change.lead.sandbox and self._queue_alerts(db, change.lead, turn)
            messages.mark_classified(db, reply_id)
        self._count(change, conversation.channel)
        return Classified(change.lead, queued)

    def _count(self, change: Change, channel: str) -> None:
        self.stats.classified += 1
        lead = change.lead
        if not change.changed:
            return
        if lead.classification == "caliente":
            self.stats.became_hot += 1
        elif lead.classification == "tibio":
            self.stats.became_warm += 1
        if lead.classification != "frio" and not lead.sandbox:
            events.info(
                "lead %d became %s (%s)",
                lead.id,
                lead.classification,
                channel,
                extra={"ctx": {"event": f"lead_{lead.classification}", "lead": lead.id}},
            )

    def _model_view(self, turn: Turn) -> tuple[list[Finding], str | None]:
        """The model's structured answer, each field checked as if the person typed it and
        against what the person wrote this turn: a model cannot invent a name, a phone, an
        e-mail or a comuna nobody wrote."""
        if not turn.brain_lead:
            return [], None
        try:
            data = json.loads(turn.brain_lead)
        except json.JSONDecodeError:
            return [], None
        if not isinstance(data, dict):
            return [], None
        # The turn stored the brain's LeadFields by their names.
        raw = {name: str(data.get(name) or "").strip()[:200] for name in MODEL_FIELDS}
        user_texts = [text for role, text in turn.lines if role == "user"]
        checked = self.extractor.model_fields(raw, " \n".join(user_texts))
        last_user = last_user_line(turn)
        findings = [Finding(name, value, How.MODEL, last_user) for name, value in checked.items()]
        guess = data.get("estado")
        return findings, guess if guess in RANK else None

    def _decide(
        self,
        lead: Lead,
        turn: Turn,
        external_key: str,
        found: Extracted,
        model_findings: list[Finding],
        model_guess: str | None,
    ) -> Classification:
        wa_phone = whatsapp_phone(external_key) if turn.channel == "whatsapp" else None
        channel = (
            [Finding("phone", wa_phone, How.CHANNEL, last_user_line(turn))] if wa_phone else []
        )
        fields, sources = settle(
            lead.fields,
            sources_from_json(lead.sources),
            [*channel, *model_findings, *found.findings],
            message_ids=turn.line_ids,
            conversation_id=turn.conversation_id,
        )
        budget = found.budget or lead.budget
        user_texts = [normalize(text) for role, text in turn.lines if role == "user"]
        signals = Signals.from_list(list(lead.signals)).with_(self.scorer.signals(user_texts))
        verdict = self.scorer.verdict(
            fields,
            signals,
            budget=budget,
            channel_phone=bool(wa_phone and fields.phone == wa_phone),
            model_guess=model_guess,
        )
        return Classification(
            fields=fields,
            budget=budget,
            # A lead never cools down by itself; a salesperson closes it (won/lost).
            classification=warmer(verdict.classification, lead.classification),
            score=verdict.score,
            reasons=verdict.reasons,
            signals=signals.as_list(),
            sources=sources_as_json(sources),
        )

    def _queue_alerts(self, db: Database, lead: Lead, turn: Turn) -> bool:
        """The owner hears once per class reached: hot is urgent, warm is normal (warm only
        once the person can be contacted: a name and a phone or e-mail)."""
        klass = lead.classification
        if klass not in self.business.notifications.notifyOn or klass == "frio":
            return False
        if klass == "tibio" and not (lead.fields.name and (lead.fields.phone or lead.fields.email)):
            return False
        queued = False
        for transport, compose in self._transports(db, lead, turn.conversation_id).items():
            key = f"alert:{lead.id}:{klass}:{transport}"
            # Every turn of a hot lead comes here: compose only what was never queued.
            if owner_notifications.exists(db, key):
                continue
            owner_notifications.enqueue(db, transport, f"alert_{klass}", key, compose(), lead.id)
            queued = True
        self.stats.alerts_queued += queued
        return queued

    def _transports(
        self, db: Database, lead: Lead, conversation_id: int
    ) -> dict[str, Callable[[], OwnerMessage]]:
        settings, business = self.settings, self.business
        owner = settings.owner_email or business.notifications.ownerEmail
        transports: dict[str, Callable[[], OwnerMessage]] = {}
        if owner and settings.email_configured:
            transports["email"] = lambda: lead_alert(
                business,
                lead,
                [Line(*row) for row in messages.last_lines(db, conversation_id, ALERT_LINES)],
            )
        if settings.webhook_url:
            transports["webhook"] = lambda: lead_event(business, "new_lead", lead)
        return transports


def _opted_out(turn: Turn, result: Classification) -> Classification:
    """The person asked us to stop: no longer a prospect."""
    if turn.source != "optout":
        return result
    return replace(
        result, classification="frio", reasons=[*result.reasons, "pidió no recibir más mensajes"]
    )


def last_user_line(turn: Turn) -> int:
    return max((i for i, (role, _t) in enumerate(turn.lines) if role == "user"), default=-1)


def whatsapp_phone(wa_id: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + wa_id.lstrip("+"), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

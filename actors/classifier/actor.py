"""The classifier actor: takes every answered turn into account for its lead.

For each stored reply not yet classified: extract the fields from the user's lines of that
turn (and from the model's structured answer, when there was one), find or create the
person's lead (linking channels by phone/e-mail), score it, store the result with its history,
and queue the owner's alert when the lead first becomes hot or warm — all in one transaction
that also marks the reply classified, so a crash repeats nothing and loses nothing. A
waiting web client then hears the turn with this classification.

On (re)start it first re-reads every unclassified reply."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import phonenumbers
import trio

from actors.ack_first import AckFirst, Work
from actors.lifecycle import cancel_when_set
from actors.messages import (
    LeadChanged,
    LeadView,
    NotifierNotice,
    ReplyEvent,
    TurnCompleted,
    TurnToClassify,
)
from actors.owner_messages import Line, lead_alert, lead_event
from store import conversations, leads, messages, owner_notifications
from store.db import Database
from store.leads import Classification, Lead
from store.messages import Turn
from store.owner_notifications import OwnerMessage
from supervisor.business import BusinessConfig
from supervisor.failpoints import Failpoints
from supervisor.settings import Settings

from .extract import Extracted, Extractor
from .fields import Finding, How, settle, sources_as_json, sources_from_json
from .scoring import RANK, Scorer, Signals, warmer
from .text import normalize

log = logging.getLogger("classifier")
events = logging.getLogger("business")  # one line per business event, no personal data

SECONDS = 1.0
SWEEP_INTERVAL = 5 * SECONDS
ALERT_LINES = 6  # last messages quoted in an alert
MODEL_FIELDS = ("name", "phone", "email", "service", "area", "urgency")


@dataclass
class ClassifierStatistics:
    classified: int = 0
    alerts_queued: int = 0
    became_hot: int = 0
    became_warm: int = 0
    opted_out: int = 0


@dataclass
class ClassifierContext:
    db: Database
    business: BusinessConfig
    settings: Settings
    notices: trio.MemorySendChannel[NotifierNotice] | None = None
    failpoints: Failpoints = field(default_factory=Failpoints)
    stats: ClassifierStatistics = field(default_factory=ClassifierStatistics)
    ack_first: AckFirst = field(default_factory=AckFirst)  # the suite's, shared

    def __post_init__(self) -> None:
        self.extractor = Extractor(self.business)
        self.scorer = Scorer(self.business.leadRules)


class Classifier:
    def __init__(self, ctx: ClassifierContext) -> None:
        self.ctx = ctx

    def handle(self, notice: TurnToClassify, nursery: trio.Nursery) -> None:
        """Classify now; tell a waiting web client in a task of its own, so a client slow to
        read its stream never holds back the next turn."""
        try:
            lead = self.classify(notice.reply_id)
        except BaseException:
            # The reply is stored: the waiting client still gets it (with the lead as it
            # was); the turn is classified when the restarted actor sweeps.
            if notice.reply_slot is not None:
                if notice.completed is not None:
                    with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                        notice.reply_slot.send_nowait(notice.completed)
                notice.reply_slot.close()
            raise
        if notice.reply_slot is None:
            return
        if notice.completed is None:
            notice.reply_slot.close()
            return
        if lead is None:  # classified before (a repeated notice): what the store says
            lead = leads.for_conversation(self.ctx.db, notice.completed.conversation_id)
        view = LeadView.of(lead, notice.completed.conversation_id, notice.completed.lead.channel)
        nursery.start_soon(_tell, notice.reply_slot, replace(notice.completed, lead=view))

    def classify(self, reply_id: int) -> Lead | None:
        """Classify one stored turn; None when it was already classified."""
        ctx, db = self.ctx, self.ctx.db
        turn = messages.turn(db, reply_id)
        if turn is None:
            return None
        conversation = conversations.get(db, turn.conversation_id)
        if conversation is None:
            with db.transaction():
                messages.mark_classified(db, reply_id)
            return None
        found = ctx.extractor.read_turn(turn.lines)
        user_texts = [text for role, text in turn.lines if role == "user"]
        model_findings, model_guess = self._model_view(turn, user_texts)
        ctx.failpoints.hit("classifier.turn")
        with db.transaction():
            lead = leads.resolve(
                db, conversation.id, conversation.channel, conversation.external_key
            ) or leads.create(db, conversation.id, conversation.channel, conversation.external_key)
            result = self._decide(
                lead, turn, conversation.external_key, found, model_findings, model_guess
            )
            if turn.source == "optout":  # the person asked us to stop: no longer a prospect
                result = replace(
                    result,
                    classification="frio",
                    reasons=[*result.reasons, "pidió no recibir más mensajes"],
                )
            change = leads.apply(db, lead, result, reply_id=reply_id, user_at=turn.user_at)
            if turn.source == "optout":
                leads.opt_out(db, lead.id)
                ctx.stats.opted_out += 1
            queued = not change.lead.sandbox and self._queue_alerts(change.lead, conversation.id)
            messages.mark_classified(db, reply_id)
        ctx.stats.classified += 1
        if change.changed and change.lead.classification == "caliente":
            ctx.stats.became_hot += 1
        elif change.changed and change.lead.classification == "tibio":
            ctx.stats.became_warm += 1
        if change.changed and change.lead.classification != "frio" and not change.lead.sandbox:
            lead_id, klass = change.lead.id, change.lead.classification
            events.info(
                "lead %d became %s (%s)",
                lead_id,
                klass,
                conversation.channel,
                extra={"ctx": {"event": f"lead_{klass}", "lead": lead_id}},
            )
        if queued:
            self._wake(LeadChanged(change.lead.id, change.lead.classification))
        return change.lead

    def _model_view(self, turn: Turn, user_texts: list[str]) -> tuple[list[Finding], str | None]:
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
        # The conversation actor stored the brain's LeadFields by their names.
        raw = {name: str(data.get(name) or "").strip()[:200] for name in MODEL_FIELDS}
        checked = self.ctx.extractor.model_fields(raw, " \n".join(user_texts))
        last_user = max(
            (i for i, (role, _t) in enumerate(turn.lines) if role == "user"), default=-1
        )
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
        wa_phone = _whatsapp_phone(external_key) if turn.channel == "whatsapp" else None
        last_user = max(
            (i for i, (role, _t) in enumerate(turn.lines) if role == "user"), default=-1
        )
        channel = [Finding("phone", wa_phone, How.CHANNEL, last_user)] if wa_phone else []
        fields, sources = settle(
            lead.fields,
            sources_from_json(lead.sources),
            [*channel, *model_findings, *found.findings],
            message_ids=turn.line_ids,
            conversation_id=turn.conversation_id,
        )
        budget = found.budget or lead.budget
        scorer = self.ctx.scorer
        user_texts = [normalize(text) for role, text in turn.lines if role == "user"]
        signals = Signals.from_list(list(lead.signals)).with_(scorer.signals(user_texts))
        verdict = scorer.verdict(
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

    def _queue_alerts(self, lead: Lead, conversation_id: int) -> bool:
        """The owner hears once per class reached: hot is urgent, warm is normal (warm only
        once the person can be contacted: a name and a phone or e-mail)."""
        ctx = self.ctx
        klass = lead.classification
        if klass not in ctx.business.notifications.notifyOn or klass == "frio":
            return False
        if klass == "tibio" and not (lead.fields.name and (lead.fields.phone or lead.fields.email)):
            return False
        owner = ctx.settings.owner_email or ctx.business.notifications.ownerEmail
        transports: dict[str, Callable[[], OwnerMessage]] = {}
        if owner and ctx.settings.email_configured:
            transports["email"] = lambda: lead_alert(
                ctx.business,
                lead,
                [Line(*row) for row in messages.last_lines(ctx.db, conversation_id, ALERT_LINES)],
            )
        if ctx.settings.webhook_url:
            transports["webhook"] = lambda: lead_event(ctx.business, "new_lead", lead)
        queued = False
        for transport, compose in transports.items():
            key = f"alert:{lead.id}:{klass}:{transport}"
            # Every turn of a hot lead comes here: compose only what was never queued.
            if owner_notifications.exists(ctx.db, key):
                continue
            owner_notifications.enqueue(
                ctx.db, transport, f"alert_{klass}", key, compose(), lead.id
            )
            queued = True
        if queued:
            ctx.stats.alerts_queued += 1
        return queued

    def _wake(self, notice: NotifierNotice) -> None:
        if self.ctx.notices is None:
            return
        try:
            self.ctx.notices.send_nowait(notice)
        except trio.WouldBlock:
            pass  # the notifier polls anyway

    async def sweep(self) -> None:
        for reply_id in messages.unclassified(self.ctx.db):
            await self.ctx.ack_first.turn(Work.CLASSIFY)  # (also a checkpoint)
            self.classify(reply_id)


def _last_user_line(turn: Turn) -> int:
    return max((i for i, (role, _t) in enumerate(turn.lines) if role == "user"), default=-1)


def _whatsapp_phone(wa_id: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + wa_id.lstrip("+"), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def _tell(slot: trio.MemorySendChannel[ReplyEvent], completed: TurnCompleted) -> None:
    async with slot:
        try:
            await slot.send(completed)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the web request gave up; the turn is stored


async def run(
    ctx: ClassifierContext,
    inbox: trio.MemoryReceiveChannel[TurnToClassify],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`inbox` belongs to the supervisor and outlives this incarnation."""
    classifier = Classifier(ctx)
    pending = messages.unclassified(ctx.db)
    if pending:
        log.info("classifying %d turn(s) left from before", len(pending))
    await classifier.sweep()
    task_status.started()
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as intake:
            nursery.start_soon(cancel_when_set, stop, intake)
            while True:
                notice: TurnToClassify | None = None
                with trio.move_on_after(SWEEP_INTERVAL):
                    notice = await inbox.receive()
                if notice is None:
                    await classifier.sweep()
                else:
                    if notice.reply_slot is None:  # no web visitor waits on this one
                        await ctx.ack_first.turn(Work.CLASSIFY)
                    classifier.handle(notice, nursery)

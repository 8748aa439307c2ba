"""The one turn path every channel runs: read → brain → record reply → classify → queue
sends and alerts → tell the waiting client.

A turn is handed a batch of stored inbound rows of one conversation (one web message, or
what a person sent on WhatsApp/Instagram in a burst) and the reply slot of a waiting web
request, if any. The slot is closed here whatever happens (`TurnPath.take`), so a waiting
request never hangs. Classification is a library call (`sales.classify`) made in the reply's
transaction, in a savepoint: if it fails, its writes are undone, the reply is committed and
goes out with the lead as it was, and the classifier actor's sweep classifies the turn later."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import trio

from actors.ack_first import AckFirst, Work
from actors.messages import (
    InboundMessage,
    LeadChanged,
    LeadView,
    NotifierNotice,
    OutboxReady,
    ReplyChunk,
    ReplySlot,
    TurnCompleted,
)
from sales.business import BusinessConfig
from sales.channels import MESSAGING, TEXT_LIMIT, split_text
from sales.classify import Classified, LeadClassifier
from sales.failpoints import Failpoints
from sales.text import OptOut
from store import conversations, leads, messages, outbox
from store.db import Database
from store.leads import Lead, LeadClass, LeadFields
from store.messages import ReplyRecord

from .brain import Brain, BrainReply, BrainTurn, ChatLine, trim_history
from .errors import BrainError
from .replies import fallback_text, opt_out_text, text_please

log = logging.getLogger("conversation")

SECONDS = 1.0
MAX_ATTEMPTS = 3  # a message that keeps crashing us is answered with the fallback
HISTORY_ROWS = 60  # then trimmed to the model's token budget
STALL_DRILL_SECONDS = 2 * SECONDS  # IA_FAILPOINTS=conversation.stall: a hung event loop


@dataclass(frozen=True)
class TurnRules:
    """One version of what a turn follows. The suite swaps the whole record when the owner
    edits the business, the prompt or the strategy; a turn reads it once, so it runs on one
    version from start to end, and nothing restarts."""

    business: BusinessConfig
    classifier: LeadClassifier
    opt_out: OptOut
    system_prompts: Mapping[str, str]  # by channel, for a model brain
    offline: Brain  # the brain when no model is configured


@dataclass
class TurnCounters:
    turns: int = 0
    fallbacks: int = 0


@dataclass(frozen=True)
class _Started:
    """The rows of a batch still pending, each with its attempt number."""

    live: list[tuple[InboundMessage, int]]
    receipt_queued: bool = False  # WhatsApp's read receipt and typing, for the notifier

    @property
    def newest(self) -> InboundMessage:
        return self.live[-1][0]

    @property
    def attempts(self) -> int:
        return max(n for _m, n in self.live)

    @property
    def ids(self) -> list[int]:
        return [m.message_id for m, _n in self.live]


class TurnPath:
    def __init__(
        self,
        db: Database,
        rules: TurnRules,
        brain: Brain | None,
        *,
        notifier_notices: trio.MemorySendChannel[NotifierNotice] | None,
        ack_first: AckFirst,
        turn_timeout: float,
        history_max_tokens: int,
        failpoints: Failpoints,
        counters: TurnCounters,
    ) -> None:
        self.db = db
        self.rules = rules  # replaced by the suite when the owner changes them
        self.brain = brain  # None: the rules' offline brain
        self.notifier_notices = notifier_notices
        self.ack_first = ack_first
        self.turn_timeout = turn_timeout
        self.history_max_tokens = history_max_tokens
        self.failpoints = failpoints
        self.counters = counters

    async def take(self, batch: list[InboundMessage]) -> None:
        """Answer `batch` (one conversation's, oldest first); its reply slot, if any, is
        closed here whatever happens."""
        slot = batch[-1].reply_slot
        try:
            if batch[-1].channel in MESSAGING:
                async with self.ack_first.answering(Work.TURN):  # Meta's 200s go first
                    completed = await self._turn(batch, slot)
            else:
                completed = await self._turn(batch, slot)
            await _tell(slot, completed)
        finally:
            if slot is not None:
                slot.close()

    async def _turn(
        self, batch: list[InboundMessage], slot: ReplySlot | None
    ) -> TurnCompleted | None:
        rules = self.rules
        started = self._start(batch)
        message = batch[-1]
        if not started.live:
            # Already answered (a copy queued before a restart) or deleted meanwhile.
            return self._from_store(message)
        message = started.newest
        if started.receipt_queued:
            self._wake(OutboxReady(message.conversation_id))
        if conversations.is_paused(self.db, message.conversation_id):
            return self._hold(started)
        lead_before = leads.for_conversation(self.db, message.conversation_id)
        reply = await self._reply(rules, started, lead_before, slot)
        reply_id, classified = self._record(rules, started, reply)
        if reply_id is None:
            return self._from_store(message)
        self.counters.turns += 1
        lead = classified.lead if classified else lead_before
        return TurnCompleted(
            conversation_id=message.conversation_id,
            inbound_id=message.message_id,
            reply_id=reply_id,
            reply=reply.text,
            source=reply.source,
            lead=LeadView.of(lead, message.conversation_id, message.channel),
            model_seconds=reply.model_seconds,
        )

    def _start(self, batch: list[InboundMessage]) -> _Started:
        """Count an attempt for each row (a message that keeps crashing us is noticed), and
        queue WhatsApp's read receipt and typing once per message."""
        db = self.db
        if len(batch) == 1 and batch[0].attempted:  # a web message, counted when stored
            return _Started([(batch[0], 1)])
        with db.transaction():
            counted = [(m, messages.start_attempt(db, m.message_id)) for m in batch]
            live = [(m, n) for m, n in counted if n is not None]
            newest = live[-1][0] if live and live[-1][1] == 1 else None
            receipt = bool(newest and newest.channel == "whatsapp" and newest.external_id)
            if newest is not None and receipt:
                outbox.enqueue(
                    db,
                    newest.conversation_id,
                    "whatsapp",
                    self._recipient(newest.conversation_id),
                    "read",
                    [str(newest.external_id)],
                )
        return _Started(live, receipt)

    def _hold(self, started: _Started) -> TurnCompleted:
        """A person has this conversation: stored and shown to them, not answered here."""
        message = started.newest
        with self.db.transaction():
            messages.hold(self.db, started.ids)
        lead = leads.for_conversation(self.db, message.conversation_id)
        return TurnCompleted(
            message.conversation_id,
            message.message_id,
            None,
            "",
            "paused",
            LeadView.of(lead, message.conversation_id, message.channel),
        )

    async def _reply(
        self,
        rules: TurnRules,
        started: _Started,
        lead_before: Lead | None,
        slot: ReplySlot | None,
    ) -> BrainReply:
        klass = lead_before.classification if lead_before else "frio"
        if started.attempts > MAX_ATTEMPTS:
            log.error(
                "message %s failed %s times; answering with the fallback",
                started.newest.message_id,
                started.attempts - 1,
            )
            return self._fallback(rules, klass)
        if any(m.kind == "text" and rules.opt_out(m.text) for m, _n in started.live):
            return BrainReply(opt_out_text(rules.business), LeadFields(), klass, "optout")
        if all(m.kind != "text" for m, _n in started.live):
            return BrainReply(text_please(rules.business), LeadFields(), klass, "canned")
        self.failpoints.hit("conversation.turn")
        self.failpoints.stall("conversation.stall", STALL_DRILL_SECONDS)
        return await self._think(rules, started.newest, lead_before, slot)

    async def _think(
        self,
        rules: TurnRules,
        message: InboundMessage,
        lead_before: Lead | None,
        slot: ReplySlot | None,
    ) -> BrainReply:
        history = [
            ChatLine(role, content)
            for role, content in messages.recent_lines(
                self.db, message.conversation_id, HISTORY_ROWS
            )
        ]
        turn = BrainTurn(
            channel=message.channel,
            history=trim_history(history, self.history_max_tokens),
            known=lead_before.visible_in(message.conversation_id) if lead_before else LeadFields(),
            known_sources=lead_before.sources if lead_before else {},
            system_prompt=rules.system_prompts.get(message.channel, ""),
        )
        brain = self.brain or rules.offline
        stream = _Stream(slot if message.stream else None)
        began = time.perf_counter()  # the model's share of the turn (the 500 ms budget)
        # The turn's deadline covers the wait for the model gate too: a visitor in a burst
        # waits (the page shows typing) and gets the fallback only when time runs out.
        with trio.move_on_after(self.turn_timeout) as deadline:
            try:
                reply = await brain.reply(turn, stream.send if stream.slot else None)
                return replace(reply, model_seconds=time.perf_counter() - began)
            except BrainError as exc:
                log.warning("brain failed for conversation %s: %s", message.conversation_id, exc)
        if deadline.cancelled_caught:
            log.warning(
                "brain timed out after %.1fs for conversation %s",
                self.turn_timeout,
                message.conversation_id,
            )
        fallback = self._fallback(rules, lead_before.classification if lead_before else "frio")
        return replace(fallback, model_seconds=time.perf_counter() - began)

    def _record(
        self, rules: TurnRules, started: _Started, reply: BrainReply
    ) -> tuple[int | None, Classified | None]:
        """The reply and its sends on WhatsApp/Instagram in one transaction, then the lead's
        classification in one of its own. Not one transaction for both (as once, with the
        classification in a savepoint): its reading and scoring, ~0.4 ms of Python, then ran
        holding the file's write lock, which workers sharing the file wait for (measured:
        two workers answered 1.24x one; the lock held 48 % of the time). A crash between the
        two leaves a stored turn unclassified: the classifier actor's sweep classifies it."""
        db, message = self.db, started.newest
        classified = None
        with db.transaction():
            reply_id = messages.record_reply(
                db,
                message.conversation_id,
                message.channel,
                started.ids,
                ReplyRecord(
                    reply.text,
                    reply.source,
                    reply.model,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    _brain_lead(reply),
                ),
            )
            if reply_id and message.channel in MESSAGING:
                outbox.enqueue(
                    db,
                    message.conversation_id,
                    message.channel,
                    self._recipient(message.conversation_id),
                    "text",
                    split_text(reply.text, TEXT_LIMIT[message.channel]),
                    reply_id,
                )
        if reply_id:
            classified = self._classify(rules, reply_id, reply)
        if reply_id and message.channel in MESSAGING:
            self._wake(OutboxReady(message.conversation_id))
        if classified is not None and classified.alert_queued:
            self._wake(LeadChanged(classified.lead.id, classified.lead.classification))
        return reply_id, classified

    def _classify(self, rules: TurnRules, reply_id: int, reply: BrainReply) -> Classified | None:
        """The lead after this turn (its own transaction); None when it was classified
        already or classification failed (logged and counted; its writes undone, so the
        classifier actor's sweep classifies the stored turn later)."""
        try:
            return rules.classifier.classify(self.db, reply_id, reply.read)
        except Exception:
            rules.classifier.stats.failed += 1
            log.exception("classifying reply %s failed; the sweep retries it", reply_id)
            return None

    def _fallback(self, rules: TurnRules, classification: LeadClass) -> BrainReply:
        self.counters.fallbacks += 1
        return BrainReply(fallback_text(rules.business), LeadFields(), classification, "fallback")

    def _recipient(self, conversation_id: int) -> str:
        conversation = conversations.get(self.db, conversation_id)
        assert conversation is not None  # it has a message being answered
        return conversation.external_key

    def _wake(self, notice: NotifierNotice) -> None:
        if self.notifier_notices is None:
            return
        try:
            self.notifier_notices.send_nowait(notice)
        except trio.WouldBlock:
            pass  # the notifier polls the store anyway

    def _from_store(self, message: InboundMessage) -> TurnCompleted | None:
        reply = messages.reply_to(self.db, message.message_id)
        if reply is None:
            return None
        lead = leads.for_conversation(self.db, message.conversation_id)
        return TurnCompleted(
            message.conversation_id,
            message.message_id,
            reply.id,
            reply.content,
            "stored",
            LeadView.of(lead, message.conversation_id, message.channel),
        )


@dataclass
class _Stream:
    """The reply as the model writes it, to a client that asked for a stream."""

    slot: ReplySlot | None

    async def send(self, text: str) -> None:
        if self.slot is None:
            return
        try:
            await self.slot.send(ReplyChunk(text))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.slot = None  # the client left; the reply is still stored


def _brain_lead(reply: BrainReply) -> str | None:
    """What a model said of the lead, kept for the classifier (an input, not the verdict)."""
    if reply.source != "llm":
        return None
    said = {k: v for k, v in asdict(reply.lead).items() if v}
    return json.dumps({**said, "estado": reply.classification}, ensure_ascii=False)


async def _tell(slot: ReplySlot | None, event: TurnCompleted | None) -> None:
    if slot is None or event is None:
        return
    try:
        await slot.send(event)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the web request gave up; the reply is stored and shown in the history

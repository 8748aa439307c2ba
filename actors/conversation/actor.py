"""The conversation actor: one task (a lane) per active conversation.

Messages of one conversation are handled in order by its lane; different conversations run
concurrently; LLM calls wait for the model gate (in the brain), whose limit adapts to the
model server; a lane idle for a while ends. On (re)start the actor first re-reads every
pending inbound row from the store, so a crash loses nothing.
A message that keeps crashing us is answered with the fallback after `MAX_ATTEMPTS`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import trio

from actors.ack_first import AckFirst, Work
from actors.channels import MESSAGING, TEXT_LIMIT, split_text
from actors.classifier.text import OptOut
from actors.lifecycle import cancel_when_set
from actors.messages import (
    InboundMessage,
    LeadView,
    NotifierNotice,
    OutboxReady,
    ReplyChunk,
    ReplyEvent,
    TurnCompleted,
    TurnToClassify,
)
from store import conversations, leads, messages, outbox
from store.db import Database
from store.leads import Lead, LeadFields
from store.messages import ReplyRecord
from supervisor.business import BusinessConfig
from supervisor.failpoints import Failpoints

from .brain import Brain, BrainReply, BrainTurn, ChatLine, trim_history
from .errors import BrainError

log = logging.getLogger("conversation")

SECONDS = 1.0
LANE_IDLE_TIMEOUT = 120 * SECONDS
LANE_BUFFER = 32
MAX_LANES = 256  # conversations answered at once; a flood's others wait in the store
ROOM_SWEEP_DELAY = 0.1 * SECONDS
MAX_ATTEMPTS = 3
HISTORY_ROWS = 60  # then trimmed to the model's token budget
SWEEP_INTERVAL = 5 * SECONDS  # pending rows whose notice never came (a full inbox)
STALL_DRILL_SECONDS = 2 * SECONDS  # IA_FAILPOINTS=conversation.stall: a hung event loop


@dataclass
class ConversationContext:
    db: Database
    business: BusinessConfig
    brain: Brain
    turn_timeout: float
    history_max_tokens: int
    failpoints: Failpoints = field(default_factory=Failpoints)
    debounce: float = 2 * SECONDS
    outbox_ready: trio.MemorySendChannel[NotifierNotice] | None = None
    classify: trio.MemorySendChannel[TurnToClassify] | None = None
    ack_first: AckFirst = field(default_factory=AckFirst)  # the suite's, shared
    max_lanes: int = MAX_LANES
    router: ConversationRouter | None = None  # the running incarnation's
    turns: int = 0  # counted here, so that they outlive an incarnation
    fallbacks: int = 0

    def __post_init__(self) -> None:
        self.opt_out = OptOut(self.business.leadRules.optOutPhrases)

    def statistics(self) -> ConversationStatistics:
        lanes = len(self.router.lanes) if self.router else 0
        return ConversationStatistics(lanes, self.turns, self.fallbacks)


@dataclass(frozen=True)
class ConversationStatistics:
    active_lanes: int
    turns: int
    fallbacks: int


def text_please(business: BusinessConfig) -> str:
    you = "escribirme" if business.conversationStyle.formality == "tú" else "escribirnos"
    return (
        f"¡Gracias! Por ahora solo puedo leer mensajes de texto. ¿Me lo podrías {you}"
        " en un mensaje?"
    )


def opt_out_text(business: BusinessConfig) -> str:
    you = "te" if business.conversationStyle.formality == "tú" else "le"
    return (
        f"Listo, no {you} enviaremos más mensajes de seguimiento. Si más adelante necesitas"
        " algo, escríbenos cuando quieras."
        if you == "te"
        else "Listo, no le enviaremos más mensajes de seguimiento. Si más adelante necesita"
        " algo, escríbanos cuando quiera."
    )


def fallback_text(business: BusinessConfig) -> str:
    phone = business.business.phone
    tail = f" o llámanos al {phone}" if phone else ""
    return (
        "Disculpa, tuve un problema para responderte en este momento. "
        f"¿Puedes escribirme de nuevo en unos segundos{tail}?"
    )


class ConversationRouter:
    def __init__(self, ctx: ConversationContext, nursery: trio.Nursery) -> None:
        self.ctx = ctx
        self.nursery = nursery
        self.lanes: dict[int, trio.MemorySendChannel[InboundMessage]] = {}
        self.in_flight: set[int] = set()  # message ids queued or being handled
        # Conversations left in the store while every lane was taken: the sweep dispatches
        # them in order (a later message of theirs may not overtake an earlier one).
        self.held: set[int] = set()
        self.backlog = False  # the last sweep left conversations unread for want of lanes
        self.idle: dict[int, trio.MemorySendChannel[InboundMessage]] = {}  # lanes waiting
        self.room = trio.Event()  # set when a lane ends while conversations wait

    @property
    def full(self) -> bool:
        return len(self.lanes) >= self.ctx.max_lanes

    @property
    def crowded(self) -> bool:
        """Conversations wait in the store for a lane."""
        return bool(self.held) or self.backlog

    async def dispatch(self, message: InboundMessage, *, swept: bool = False) -> None:
        if message.message_id in self.in_flight and message.reply_slot is None:
            return  # already queued (a sweep and a notice for the same row)
        conversation_id = message.conversation_id
        lane = self.lanes.get(conversation_id)
        if lane is None:
            waiting = message.reply_slot is not None  # a web visitor: never held back
            if not waiting and (self.full or (conversation_id in self.held and not swept)):
                # A flood: the message waits in the store (bounded memory), not in a task.
                self.held.add(conversation_id)
                self._make_room()
                return
            self.held.discard(conversation_id)
            if self.full:
                self._make_room()  # a web visitor beyond the bound: idle lanes end first
            lane, receive = trio.open_memory_channel[InboundMessage](LANE_BUFFER)
            self.lanes[conversation_id] = lane
            self.nursery.start_soon(self._lane, conversation_id, lane, receive)
        self.in_flight.add(message.message_id)
        try:
            lane.send_nowait(message)  # no checkpoint: the lane cannot close in between
        except trio.WouldBlock:
            try:
                await lane.send(message)  # one person sent LANE_BUFFER messages at once
            except trio.ClosedResourceError:
                self.in_flight.discard(message.message_id)  # stored: the sweep takes it

    def _make_room(self) -> None:
        """End the lanes that wait idle, so that held conversations get theirs."""
        for conversation_id, lane in list(self.idle.items()):
            if (
                self.lanes.get(conversation_id) is lane
                and lane.statistics().current_buffer_used == 0
            ):
                self._end_lane(conversation_id, lane)

    def _end_lane(self, conversation_id: int, mine: trio.MemorySendChannel[InboundMessage]) -> None:
        """End this lane (not a newer one of the same conversation)."""
        if self.lanes.get(conversation_id) is mine:
            del self.lanes[conversation_id]
        mine.close()
        if self.crowded:
            self.room.set()

    def close_lanes(self) -> None:
        """Stop taking work: each lane finishes what it has queued, then ends."""
        for lane in self.lanes.values():
            lane.close()

    async def _lane(
        self,
        conversation_id: int,
        mine: trio.MemorySendChannel[InboundMessage],
        receive: trio.MemoryReceiveChannel[InboundMessage],
    ) -> None:
        async with receive:
            while True:
                self.idle[conversation_id] = mine
                try:
                    with trio.move_on_after(LANE_IDLE_TIMEOUT) as idle:
                        message = await receive.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    if self.idle.get(conversation_id) is mine:
                        del self.idle[conversation_id]
                if idle.cancelled_caught:
                    if receive.statistics().current_buffer_used == 0:
                        self._end_lane(conversation_id, mine)
                        return
                    continue
                batch = [message]
                if message.channel in MESSAGING and self.ctx.debounce > 0:
                    # One reply for what a person sends in a burst.
                    with trio.move_on_after(self.ctx.debounce):
                        while True:
                            try:
                                batch.append(await receive.receive())
                            except trio.EndOfChannel:
                                break
                if message.channel in MESSAGING:
                    await self.ctx.ack_first.turn(Work.TURN)  # Meta's acknowledgements go first
                await self._handle(batch)
                if self.crowded and receive.statistics().current_buffer_used == 0:
                    self._end_lane(conversation_id, mine)  # room for a held conversation
                    return

    async def _handle(self, batch: list[InboundMessage]) -> None:
        # The slot is closed whatever happens, so a waiting request never hangs.
        slot = batch[-1].reply_slot
        handed_off = False
        try:
            handed_off = await self._answer(batch, slot)
        finally:
            if slot is not None and not handed_off:
                slot.close()
            self.in_flight.difference_update(m.message_id for m in batch)

    async def _answer(
        self, batch: list[InboundMessage], slot: trio.MemorySendChannel[ReplyEvent] | None
    ) -> bool:
        """Answer and store; True when the slot went on to the classifier with the turn."""
        db = self.ctx.db
        message = batch[-1]
        with db.transaction():
            started = [(m, messages.start_attempt(db, m.message_id)) for m in batch]
            live = [(m, n) for m, n in started if n is not None]
            newest, first_try = (live[-1][0], live[-1][1] == 1) if live else (None, False)
            if first_try and newest and newest.channel == "whatsapp" and newest.external_id:
                # Read + typing once per message, not again when a crash retries the turn.
                recipient = self._recipient(message.conversation_id)
                outbox.enqueue(
                    db,
                    message.conversation_id,
                    "whatsapp",
                    recipient,
                    "read",
                    [newest.external_id],
                )
        if not live:
            # Already answered (a copy queued before a restart) or deleted meanwhile.
            await _deliver(slot, self._completed_from_store(message))
            return False
        self._wake_notifier(message.conversation_id)
        if conversations.is_paused(db, message.conversation_id):
            # A person has this conversation: stored and shown to them, not answered here.
            with db.transaction():
                messages.hold(db, [m.message_id for m, _n in live])
            await _deliver(
                slot,
                TurnCompleted(
                    message.conversation_id,
                    message.message_id,
                    None,
                    "",
                    "paused",
                    LeadView.of(
                        leads.for_conversation(db, message.conversation_id),
                        message.conversation_id,
                        message.channel,
                    ),
                ),
            )
            return False
        attempts = max(n for _m, n in live if n is not None)
        message = live[-1][0]
        lead_before = leads.for_conversation(db, message.conversation_id)
        if attempts > MAX_ATTEMPTS:
            log.error(
                "message %s failed %s times; answering with the fallback",
                message.message_id,
                attempts - 1,
            )
            reply = self._fallback(lead_before)
        elif any(m.kind == "text" and self.ctx.opt_out(m.text) for m, _n in live):
            reply = BrainReply(
                opt_out_text(self.ctx.business),
                LeadFields(),
                lead_before.classification if lead_before else "frio",
                "optout",
            )
        elif all(m.kind != "text" for m, _n in live):
            reply = BrainReply(
                text_please(self.ctx.business),
                LeadFields(),
                lead_before.classification if lead_before else "frio",
                "canned",
            )
        else:
            self.ctx.failpoints.hit("conversation.turn")
            self.ctx.failpoints.stall("conversation.stall", STALL_DRILL_SECONDS)
            reply = await self._think(message, lead_before, slot)

        with db.transaction():
            reply_id = messages.record_reply(
                db,
                message.conversation_id,
                message.channel,
                [m.message_id for m, _n in live],
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
                parts = split_text(reply.text, TEXT_LIMIT[message.channel])
                outbox.enqueue(
                    db,
                    message.conversation_id,
                    message.channel,
                    self._recipient(message.conversation_id),
                    "text",
                    parts,
                    reply_id,
                )
        if reply_id and message.channel in MESSAGING:
            self._wake_notifier(message.conversation_id)
        if reply_id is None:
            await _deliver(slot, self._completed_from_store(message))
            return False
        self.ctx.turns += 1
        completed = TurnCompleted(
            conversation_id=message.conversation_id,
            inbound_id=message.message_id,
            reply_id=reply_id,
            reply=reply.text,
            source=reply.source,
            lead=LeadView.of(lead_before, message.conversation_id, message.channel),
        )
        if self.ctx.classify is None:
            await _deliver(slot, completed)
            return False
        # The classifier tells the waiting client, with this turn's classification.
        await self.ctx.classify.send(TurnToClassify(reply_id, completed, slot))
        return True

    async def _think(
        self,
        message: InboundMessage,
        lead_before: Lead | None,
        slot: trio.MemorySendChannel[ReplyEvent] | None,
    ) -> BrainReply:
        db = self.ctx.db
        history = [
            ChatLine(role, content)
            for role, content in messages.recent_lines(db, message.conversation_id, HISTORY_ROWS)
        ]
        turn = BrainTurn(
            channel=message.channel,
            history=trim_history(history, self.ctx.history_max_tokens),
            known=lead_before.visible_in(message.conversation_id) if lead_before else LeadFields(),
            known_sources=lead_before.sources if lead_before else {},
        )
        streaming = {"slot": slot}

        async def on_chunk(text: str) -> None:
            target = streaming["slot"]
            if target is None:
                return
            try:
                await target.send(ReplyChunk(text))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                streaming["slot"] = None  # the client left; the reply is still stored

        # The turn's deadline covers the wait for the model gate too: a visitor in a burst
        # waits (the page shows typing) and gets the fallback only when time runs out.
        with trio.move_on_after(self.ctx.turn_timeout) as deadline:
            try:
                return await self.ctx.brain.reply(
                    turn, on_chunk if slot and message.stream else None
                )
            except BrainError as exc:
                log.warning("brain failed for conversation %s: %s", message.conversation_id, exc)
        if deadline.cancelled_caught:
            log.warning(
                "brain timed out after %.1fs for conversation %s",
                self.ctx.turn_timeout,
                message.conversation_id,
            )
        return self._fallback(lead_before)

    def _recipient(self, conversation_id: int) -> str:
        conversation = conversations.get(self.ctx.db, conversation_id)
        assert conversation is not None  # it has a message being answered
        return conversation.external_key

    def _wake_notifier(self, conversation_id: int) -> None:
        if self.ctx.outbox_ready is None:
            return
        try:
            self.ctx.outbox_ready.send_nowait(OutboxReady(conversation_id))
        except trio.WouldBlock:
            pass  # the notifier polls the outbox anyway

    async def sweep(self, *, starting: bool = False) -> None:
        """Dispatch pending rows nobody told us about (their notice met a full inbox, or
        every lane was taken), oldest first; at start, what a restart must pick up."""
        self.room = trio.Event()
        room = max(0, self.ctx.max_lanes - len(self.lanes))
        left: set[int] = set()
        pending = messages.pending_inbound(
            self.ctx.db,
            skip=self.in_flight,
            new_conversations=room,
            open_conversations=self.lanes,
            left=left,
        )
        self.backlog = bool(left)  # conversations wait in the store for a lane
        if self.backlog:
            self._make_room()
        if starting and pending:
            log.info("picking up %d pending message(s)", len(pending))
        for stored in pending:
            if stored.id not in self.in_flight:  # (dispatched meanwhile)
                await self.dispatch(InboundMessage.of(stored), swept=True)

    def _fallback(self, lead_before: Lead | None) -> BrainReply:
        self.ctx.fallbacks += 1
        return BrainReply(
            text=fallback_text(self.ctx.business),
            lead=LeadFields(),
            classification=lead_before.classification if lead_before else "frio",
            source="fallback",
        )

    def _completed_from_store(self, message: InboundMessage) -> TurnCompleted | None:
        reply = messages.reply_to(self.ctx.db, message.message_id)
        if reply is None:
            return None
        lead = leads.for_conversation(self.ctx.db, message.conversation_id)
        return TurnCompleted(
            message.conversation_id,
            message.message_id,
            reply.id,
            reply.content,
            "stored",
            LeadView.of(lead, message.conversation_id, message.channel),
        )


def _brain_lead(reply: BrainReply) -> str | None:
    """What a model said of the lead, kept for the classifier (an input, not the verdict)."""
    if reply.source != "llm":
        return None
    said = {k: v for k, v in asdict(reply.lead).items() if v}
    return json.dumps({**said, "estado": reply.classification}, ensure_ascii=False)


async def _deliver(
    slot: trio.MemorySendChannel[ReplyEvent] | None, event: TurnCompleted | None
) -> None:
    if slot is None or event is None:
        return
    try:
        await slot.send(event)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the web request gave up; the reply is stored and shown in the history


async def run(
    ctx: ConversationContext,
    inbox: trio.MemoryReceiveChannel[InboundMessage],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The actor. `inbox` belongs to the supervisor: it is never closed here, so it outlives
    this incarnation."""
    async with trio.open_nursery() as nursery:
        router = ConversationRouter(ctx, nursery)
        ctx.router = router
        await router.sweep(starting=True)
        task_status.started()
        sweeping = trio.CancelScope()
        nursery.start_soon(_sweep_forever, router, sweeping)
        with trio.CancelScope() as intake:
            nursery.start_soon(cancel_when_set, stop, intake)
            while True:
                message = await inbox.receive()
                await router.dispatch(message)
                # In a burst, take what is already queued now: one message per scheduler
                # pass (each pass runs every waiting request) left 333 of 2,000 visitors
                # past the ingress's hand-off limit (503).
                while True:
                    try:
                        message = inbox.receive_nowait()
                    except trio.WouldBlock:
                        break
                    await router.dispatch(message)
        sweeping.cancel()
        router.close_lanes()


async def _sweep_forever(router: ConversationRouter, scope: trio.CancelScope) -> None:
    with scope:  # cancelled with the intake, when the actor is asked to stop
        while True:
            with trio.move_on_after(SWEEP_INTERVAL):
                await router.room.wait()  # a lane ended while conversations were held
                await trio.sleep(ROOM_SWEEP_DELAY)  # let more end: one sweep for several
            await router.sweep()

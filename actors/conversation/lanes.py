"""Lanes: one task per active conversation, so one person's messages are handled in order
and different people concurrently.

At most `max_lanes` lanes run at once; a flood's other conversations wait in the store
("held", in order: a later message cannot overtake an earlier one) and a sweep dispatches
them when lanes end. A web visitor is never held (they wait inside their request): beyond
the bound, idle lanes end first to make room. A lane idle for `idle_timeout` ends.
On WhatsApp/Instagram a lane gathers what a person sends within `debounce` into one batch,
so a burst gets one reply.

In a cluster (several processes on one store) a lane answers a batch only while this
process holds the conversation's lease (`conversation:<id>`, store/leases.py; renewed by
the cluster actor while the turn runs, released when the lane has nothing queued), so one
person's messages keep one order across processes. A batch whose lease another holds is
left in the store for it (its sweep, or ours once it lets go); a web visitor's request waits
here, woken by the holder's notice (news.py: NOTIFY on PostgreSQL, a short poll on SQLite),
for the lease to come free or the reply to be stored. A lane
that takes the lease answers first the conversation's older rows still pending (left by a
process that could not take it then), so a later message never overtakes them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import trio

from actors.messages import InboundMessage
from sales.channels import MESSAGING
from store import leases, messages
from store.db import Database
from store.errors import StoreError

from . import news
from .news import News

log = logging.getLogger("conversation")

SECONDS = 1.0
LANE_IDLE_TIMEOUT = 120 * SECONDS
LANE_BUFFER = 32
MAX_LANES = 256  # conversations answered at once; a flood's others wait in the store

TakeBatch = Callable[[list[InboundMessage]], Awaitable[None]]
Lane = trio.MemorySendChannel[InboundMessage]


@dataclass(frozen=True)
class LaneLimits:
    max_lanes: int = MAX_LANES
    idle_timeout: float = LANE_IDLE_TIMEOUT
    debounce: float = 2 * SECONDS


class LaneRouter:
    def __init__(
        self,
        db: Database,
        take: TakeBatch,
        nursery: trio.Nursery,
        limits: LaneLimits,
        owner: str | None = None,
        news: News | None = None,
    ) -> None:
        self.db = db
        self.owner = owner  # this process's name on leases; None: alone, no leases
        self.news = news or News()  # a web request waiting on another process hears here
        self.take = take  # answers one batch of one conversation
        self.nursery = nursery
        self.limits = limits
        self.lanes: dict[int, Lane] = {}
        self.in_flight: set[int] = set()  # message ids queued or being handled
        # Conversations left in the store while every lane was taken: the sweep dispatches
        # them in order (a later message of theirs may not overtake an earlier one).
        self.held: set[int] = set()
        self.backlog = False  # the last sweep left conversations unread for want of lanes
        self.idle: dict[int, Lane] = {}  # lanes waiting for a message
        self.room = trio.Event()  # set when a lane ends while conversations wait

    @property
    def full(self) -> bool:
        return len(self.lanes) >= self.limits.max_lanes

    @property
    def crowded(self) -> bool:
        """Conversations wait in the store for a lane."""
        return bool(self.held) or self.backlog

    async def dispatch(self, message: InboundMessage, *, swept: bool = False) -> None:
        if message.message_id in self.in_flight:
            if message.reply_slot is None:
                return  # already queued (a sweep and a notice for the same row)
            # A sweep queued this web message before its notice came: the copy's turn must
            # check the row again (it may be answered by then), not trust the count made
            # when it was stored.
            message = replace(message, attempted=False)
        lane = self.lanes.get(message.conversation_id)
        if lane is None:
            lane = self._open_lane(message, swept=swept)
            if lane is None:
                return  # held: it waits in the store
        self.in_flight.add(message.message_id)
        try:
            lane.send_nowait(message)  # no checkpoint: the lane cannot close in between
        except trio.WouldBlock:
            try:
                await lane.send(message)  # one person sent LANE_BUFFER messages at once
            except trio.ClosedResourceError:
                self.in_flight.discard(message.message_id)  # stored: the sweep takes it

    def _open_lane(self, message: InboundMessage, *, swept: bool) -> Lane | None:
        conversation_id = message.conversation_id
        waiting = message.reply_slot is not None  # a web visitor: never held back
        if not waiting and (self.full or (conversation_id in self.held and not swept)):
            # A flood: the message waits in the store (bounded memory), not in a task.
            self.held.add(conversation_id)
            self._make_room()
            return None
        self.held.discard(conversation_id)
        if self.full:
            self._make_room()  # a web visitor beyond the bound: idle lanes end first
        lane, receive = trio.open_memory_channel[InboundMessage](LANE_BUFFER)
        self.lanes[conversation_id] = lane
        self.nursery.start_soon(self._lane, conversation_id, lane, receive)
        return lane

    def _make_room(self) -> None:
        """End the lanes that wait idle, so that held conversations get theirs."""
        for conversation_id, lane in list(self.idle.items()):
            if (
                self.lanes.get(conversation_id) is lane
                and lane.statistics().current_buffer_used == 0
            ):
                self._end_lane(conversation_id, lane)

    def _end_lane(self, conversation_id: int, mine: Lane) -> None:
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
        mine: Lane,
        receive: trio.MemoryReceiveChannel[InboundMessage],
    ) -> None:
        async with receive:
            while True:
                message = await self._next(conversation_id, mine, receive)
                if message is None:
                    return
                batch = await self._gather(message, receive)
                marked: list[int] = []  # older rows answered first, in flight meanwhile
                try:
                    claimed = await self._claim(conversation_id, batch)
                    if claimed is not None:
                        earlier = self._overtaken(claimed)
                        marked = [
                            m.message_id for m in earlier if m.message_id not in self.in_flight
                        ]
                        self.in_flight.update(marked)
                        await self._answer(earlier, claimed)
                        self._tell(conversation_id)  # its reply is stored
                finally:
                    self.in_flight.difference_update([*marked, *(m.message_id for m in batch)])
                    if receive.statistics().current_buffer_used == 0:
                        self._let_go(conversation_id)
                if self.crowded and receive.statistics().current_buffer_used == 0:
                    self._end_lane(conversation_id, mine)  # room for a held conversation
                    return

    async def _claim(
        self, conversation_id: int, batch: list[InboundMessage]
    ) -> list[InboundMessage] | None:
        """The batch to answer, once this process holds the conversation's lease; None
        when another holds it (the rows wait in the store for it). A web visitor waits
        for the lease or for the other's reply, stored: the batch, then, re-reads its rows
        (answered meanwhile, it hears the stored reply)."""
        if self.owner is None or leases.take(
            self.db, leases.conversation(conversation_id), self.owner
        ):
            return batch
        slot = batch[-1].reply_slot
        if slot is None:
            return None
        again = [replace(m, attempted=False) for m in batch]
        while slot.statistics().open_receive_channels:  # until the request gives up
            await self.news.wait(conversation_id)
            name = leases.conversation(conversation_id)
            if leases.take(self.db, name, self.owner) or not messages.is_pending(
                self.db, batch[-1].message_id
            ):
                return again
        return None

    def _overtaken(self, batch: list[InboundMessage]) -> list[InboundMessage]:
        """The conversation's messages stored before the batch and still pending: another
        process stored them while this one, or a third, held the conversation, and left them
        for a sweep. Now that this process holds it, they go first, even when a sweep has
        queued them in this lane behind the batch (that copy then finds them answered)."""
        if self.owner is None:
            return []  # alone: every message came to this lane, in order
        first, ids = batch[0], {m.message_id for m in batch}
        return [
            InboundMessage.of(m)
            for m in messages.pending_before(self.db, first.conversation_id, first.message_id)
            if m.id not in ids
        ]

    async def _answer(self, earlier: list[InboundMessage], batch: list[InboundMessage]) -> None:
        if earlier and batch[-1].channel in MESSAGING and self.limits.debounce > 0:
            await self.take([*earlier, *batch])  # one reply for the burst, as `_gather` does
            return
        for message in earlier:
            await self.take([message])
        await self.take(batch)

    def _let_go(self, conversation_id: int) -> None:
        if self.owner is not None:
            if leases.release(self.db, leases.conversation(conversation_id), self.owner):
                self._tell(conversation_id)  # free for a process whose visitor waits

    def _tell(self, conversation_id: int) -> None:
        if self.owner is not None:
            with contextlib.suppress(StoreError):  # the waiters look again in time anyway
                news.tell(self.db, conversation_id)

    async def _next(
        self,
        conversation_id: int,
        mine: Lane,
        receive: trio.MemoryReceiveChannel[InboundMessage],
    ) -> InboundMessage | None:
        """The lane's next message; None when the lane ends (closed, or idle too long)."""
        while True:
            self.idle[conversation_id] = mine
            try:
                with trio.move_on_after(self.limits.idle_timeout):
                    return await receive.receive()
            except trio.EndOfChannel:
                return None
            finally:
                if self.idle.get(conversation_id) is mine:
                    del self.idle[conversation_id]
            # Idle too long: end, unless a message came in just as time ran out.
            if receive.statistics().current_buffer_used == 0:
                self._end_lane(conversation_id, mine)
                return None

    async def _gather(
        self, first: InboundMessage, receive: trio.MemoryReceiveChannel[InboundMessage]
    ) -> list[InboundMessage]:
        """One reply for what a person sends in a burst (WhatsApp/Instagram)."""
        batch = [first]
        if first.channel not in MESSAGING or self.limits.debounce <= 0:
            return batch
        with trio.move_on_after(self.limits.debounce):
            while True:
                try:
                    batch.append(await receive.receive())
                except trio.EndOfChannel:
                    break
        return batch

    async def sweep(self, *, starting: bool = False) -> None:
        """Dispatch pending rows nobody told us about (their notice met a full inbox, or
        every lane was taken), oldest first; at start, what a restart must pick up."""
        self.room = trio.Event()
        room = max(0, self.limits.max_lanes - len(self.lanes))
        left: set[int] = set()
        pending = messages.pending_inbound(
            self.db,
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

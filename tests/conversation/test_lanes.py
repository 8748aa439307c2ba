"""The lane router (actors/conversation/lanes.py) at unit level, on trio's autojump clock:
a real store holds the rows as the ingress writes them, and a real `take` records each
batch and answers it in the store, as the turn path does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.conversation.lanes import LaneLimits, LaneRouter
from actors.messages import InboundMessage, ReplyEvent
from store import conversations, leases, messages
from store.db import Database, open_database
from store.messages import ReplyRecord


@dataclass(frozen=True)
class Taken:
    at: float  # trio.current_time() when the batch was taken
    conversation_id: int
    texts: tuple[str, ...]
    waiting: bool  # a web visitor waits on a reply slot


@dataclass
class Answerer:
    """The lanes' `take`: records each batch, waits while its conversation is held back by
    the test, then answers it in the store (so a sweep does not find it pending again)."""

    db: Database
    seconds: float = 0.0  # how long answering a batch takes
    taken: list[Taken] = field(default_factory=list)
    answered: list[Taken] = field(default_factory=list)
    gates: dict[int, trio.Event] = field(default_factory=dict)
    attempted: list[bool] = field(default_factory=list)  # each batch's first attempt counted

    def hold(self, conversation_id: int) -> trio.Event:
        """Batches of this conversation wait until the returned event is set."""
        gate = self.gates[conversation_id] = trio.Event()
        return gate

    async def take(self, batch: list[InboundMessage]) -> None:
        last = batch[-1]
        taken = Taken(
            trio.current_time(),
            last.conversation_id,
            tuple(m.text for m in batch),
            last.reply_slot is not None,
        )
        self.taken.append(taken)
        self.attempted.append(last.attempted)
        try:
            if (gate := self.gates.get(last.conversation_id)) is not None:
                await gate.wait()
            await trio.sleep(self.seconds)
            messages.record_reply(
                self.db,
                last.conversation_id,
                last.channel,
                [m.message_id for m in batch],
                ReplyRecord("respuesta", "offline"),
            )
            self.answered.append(taken)
        finally:
            if last.reply_slot is not None:
                last.reply_slot.close()

    def of(self, conversation_id: int) -> list[tuple[str, ...]]:
        """The batches taken for one conversation, in order."""
        return [t.texts for t in self.taken if t.conversation_id == conversation_id]

    def times(self, conversation_id: int) -> list[float]:
        return [t.at for t in self.taken if t.conversation_id == conversation_id]


class Inbox:
    """Rows as the ingress stores them, and the notice it sends for each."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.counter = 0
        self.slots: list[trio.MemoryReceiveChannel[ReplyEvent]] = []

    def person(self, channel: str, key: str) -> int:
        return conversations.open_conversation(self.db, channel, key).id

    def message(self, conversation_id: int, channel: str, text: str) -> InboundMessage:
        """A WhatsApp/Instagram message from a webhook: nobody waits on its reply."""
        self.counter += 1
        stored = messages.add_inbound(
            self.db, conversation_id, channel, text, f"wamid.lanes-{self.counter}"
        )
        assert stored is not None
        return InboundMessage.of(stored)

    def visitor(self, conversation_id: int, text: str) -> InboundMessage:
        """A web chat message: the visitor's request waits on a reply slot."""
        stored = messages.add_inbound(self.db, conversation_id, "web", text)
        assert stored is not None
        slot, heard = trio.open_memory_channel[ReplyEvent](1)
        self.slots.append(heard)
        return InboundMessage(conversation_id, stored.id, "web", text, slot)


@dataclass
class Harness:
    db: Database
    answerer: Answerer
    inbox: Inbox
    router: LaneRouter


@asynccontextmanager
async def lanes(
    tmp_path: Path, limits: LaneLimits, *, seconds: float = 0.0, owner: str | None = None
) -> AsyncIterator[Harness]:
    """The router of one process; with `owner`, one of a cluster (it takes leases)."""
    db = open_database(tmp_path / "db" / "leads.db")
    answerer = Answerer(db, seconds)
    try:
        async with trio.open_nursery() as nursery:
            router = LaneRouter(db, answerer.take, nursery, limits, owner)
            yield Harness(db, answerer, Inbox(db), router)
            router.close_lanes()
    finally:
        db.close()


def pending(db: Database) -> list[str]:
    return [m.content for m in messages.pending_inbound(db)]


async def settle() -> None:
    """Every task has run as far as it can without the clock moving."""
    await trio.testing.wait_all_tasks_blocked()


async def test_one_persons_messages_go_in_order_and_different_people_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(debounce=0), seconds=1.0) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        luis = h.inbox.person("whatsapp", "56922222222")
        start = trio.current_time()
        for n in range(3):
            await h.router.dispatch(h.inbox.message(ana, "whatsapp", f"ana {n}"))
            await h.router.dispatch(h.inbox.message(luis, "whatsapp", f"luis {n}"))
        await trio.sleep(10)
        # Each answer takes 1 s: one after the other for one person, side by side for two.
        assert h.answerer.of(ana) == [("ana 0",), ("ana 1",), ("ana 2",)]
        assert h.answerer.of(luis) == [("luis 0",), ("luis 1",), ("luis 2",)]
        assert [t - start for t in h.answerer.times(ana)] == [0, 1, 2]
        assert [t - start for t in h.answerer.times(luis)] == [0, 1, 2]
        assert pending(h.db) == []


async def test_beyond_max_lanes_conversations_wait_in_the_store_and_keep_their_order(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(max_lanes=2, debounce=0)) as h:
        ana, luis, eva, tom = (
            h.inbox.person("whatsapp", phone)
            for phone in ("56911111111", "56922222222", "56933333333", "56944444444")
        )
        ana_answering, luis_answering = h.answerer.hold(ana), h.answerer.hold(luis)
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await h.router.dispatch(h.inbox.message(luis, "whatsapp", "luis 1"))
        await h.router.dispatch(h.inbox.message(eva, "whatsapp", "eva 1"))
        await h.router.dispatch(h.inbox.message(tom, "whatsapp", "tom 1"))
        await settle()
        # Both lanes are busy: Eva and Tom wait in the store, not in a task.
        assert set(h.router.lanes) == {ana, luis}
        assert h.router.held == {eva, tom}
        assert pending(h.db) == ["ana 1", "luis 1", "eva 1", "tom 1"]

        ana_answering.set()
        await settle()
        # Ana's lane ends at once (not after its idle timeout) so that a held one gets it.
        assert set(h.router.lanes) == {luis}
        assert h.router.room.is_set()
        # Eva's next message arrives before the sweep: it may not overtake her first one.
        await h.router.dispatch(h.inbox.message(eva, "whatsapp", "eva 2"))
        await settle()
        assert set(h.router.lanes) == {luis}
        assert h.answerer.of(eva) == []

        await h.router.sweep()  # one lane free: the oldest held conversation gets it
        await settle()
        assert h.answerer.of(eva) == [("eva 1",), ("eva 2",)]
        assert h.answerer.of(tom) == []
        # Answered, Eva's lane ends at once: Tom still waits for one.
        assert set(h.router.lanes) == {luis}
        assert h.router.crowded

        await h.router.sweep()
        await settle()
        assert h.answerer.of(tom) == [("tom 1",)]
        luis_answering.set()
        await settle()
        assert pending(h.db) == []
        assert not h.router.crowded


async def test_a_backlog_in_the_store_gets_lanes_as_they_end(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(max_lanes=1, debounce=0)) as h:
        people = [h.inbox.person("whatsapp", f"5699000000{i}") for i in range(3)]
        for i, person in enumerate(people):
            h.inbox.message(person, "whatsapp", f"hola {i}")  # stored; no notice (a restart)
        start = trio.current_time()
        await h.router.sweep(starting=True)
        await settle()
        assert [t.texts for t in h.answerer.taken] == [("hola 0",)]
        # The others wait in the store: the answered lane ends at once to make room.
        assert h.router.lanes == {} and h.router.room.is_set()
        await h.router.sweep()
        await settle()
        await h.router.sweep()
        await settle()
        assert [t.texts for t in h.answerer.taken] == [("hola 0",), ("hola 1",), ("hola 2",)]
        assert [t.at for t in h.answerer.taken] == [start] * 3
        assert pending(h.db) == [] and not h.router.crowded


async def test_a_held_message_ends_idle_lanes_to_make_room(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(max_lanes=2, debounce=0)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        luis = h.inbox.person("whatsapp", "56922222222")
        eva = h.inbox.person("instagram", "6123450000000001")
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await h.router.dispatch(h.inbox.message(luis, "whatsapp", "luis 1"))
        await settle()
        assert set(h.router.idle) == {ana, luis}  # answered; waiting for more
        start = trio.current_time()
        await h.router.dispatch(h.inbox.message(eva, "instagram", "eva 1"))
        await settle()
        assert h.router.held == {eva}
        assert h.router.lanes == {} and h.router.room.is_set()
        await h.router.sweep()
        await settle()
        assert h.answerer.of(eva) == [("eva 1",)]
        assert h.answerer.times(eva) == [start]  # no idle timeout waited out


async def test_a_web_visitor_is_never_held_and_idle_lanes_end_for_them(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(max_lanes=2, debounce=0)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        luis = h.inbox.person("whatsapp", "56922222222")
        visitor = h.inbox.person("web", "session-1")
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await h.router.dispatch(h.inbox.message(luis, "whatsapp", "luis 1"))
        await settle()
        assert set(h.router.lanes) == {ana, luis} == set(h.router.idle)
        start = trio.current_time()
        await h.router.dispatch(h.inbox.visitor(visitor, "hola"))
        await settle()
        assert h.router.held == set()
        assert set(h.router.lanes) == {visitor}  # the idle lanes ended for the visitor
        assert h.answerer.taken[-1] == Taken(start, visitor, ("hola",), waiting=True)


async def test_a_web_visitor_gets_a_lane_even_when_every_lane_is_busy(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(max_lanes=2, debounce=0)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        luis = h.inbox.person("whatsapp", "56922222222")
        visitor = h.inbox.person("web", "session-1")
        ana_answering, luis_answering = h.answerer.hold(ana), h.answerer.hold(luis)
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await h.router.dispatch(h.inbox.message(luis, "whatsapp", "luis 1"))
        await settle()
        start = trio.current_time()
        await h.router.dispatch(h.inbox.visitor(visitor, "hola"))
        await settle()
        assert h.router.held == set()
        assert set(h.router.lanes) == {ana, luis, visitor}  # beyond the bound, for a visitor
        assert h.answerer.answered == [Taken(start, visitor, ("hola",), waiting=True)]
        ana_answering.set()
        luis_answering.set()


async def test_an_idle_lane_ends_after_its_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(idle_timeout=120, debounce=0)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await settle()
        lane = h.router.lanes[ana]
        await trio.sleep(100)
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 2"))  # the same lane
        assert h.router.lanes[ana] is lane
        await trio.sleep(119)  # idle 119 s since "ana 2"
        assert h.router.lanes.get(ana) is lane
        await trio.sleep(2)
        assert ana not in h.router.lanes and ana not in h.router.idle
        assert h.answerer.of(ana) == [("ana 1",), ("ana 2",)]


async def test_debounce_gathers_a_messaging_burst_but_not_web_messages(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(debounce=2)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        eva = h.inbox.person("instagram", "6123450000000001")
        visitor = h.inbox.person("web", "session-1")
        start = trio.current_time()
        for n in range(3):
            await h.router.dispatch(h.inbox.message(ana, "whatsapp", f"ana {n}"))
            await h.router.dispatch(h.inbox.message(eva, "instagram", f"eva {n}"))
            await h.router.dispatch(h.inbox.visitor(visitor, f"web {n}"))
            await trio.sleep(0.5)
        await trio.sleep(5)
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana later"))
        await trio.sleep(5)
        # One batch per burst, taken when the person has been quiet for the debounce.
        assert h.answerer.of(ana) == [("ana 0", "ana 1", "ana 2"), ("ana later",)]
        assert [t - start for t in h.answerer.times(ana)] == [2, 8.5]
        assert h.answerer.of(eva) == [("eva 0", "eva 1", "eva 2")]
        # A web visitor waits in their request: each message is answered at once.
        assert h.answerer.of(visitor) == [("web 0",), ("web 1",), ("web 2",)]
        assert [t - start for t in h.answerer.times(visitor)] == [0, 0.5, 1]
        assert pending(h.db) == []


async def test_a_second_notice_for_a_row_in_flight_is_ignored(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with lanes(tmp_path, LaneLimits(debounce=0)) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        answering = h.answerer.hold(ana)
        first = h.inbox.message(ana, "whatsapp", "ana 1")
        second = h.inbox.message(ana, "whatsapp", "ana 2")
        await h.router.dispatch(first)  # being answered
        await h.router.dispatch(second)  # queued in the lane
        await settle()
        await h.router.dispatch(first)  # the notices again, as a sweep would read them
        await h.router.dispatch(second)
        await h.router.sweep()
        assert h.router.in_flight == {first.message_id, second.message_id}
        answering.set()
        await settle()
        assert h.answerer.of(ana) == [("ana 1",), ("ana 2",)]
        assert h.router.in_flight == set()


async def test_closing_the_lanes_lets_queued_work_finish(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    limits = LaneLimits(idle_timeout=120, debounce=0)
    start = trio.current_time()
    async with lanes(tmp_path, limits, seconds=1.0) as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        luis = h.inbox.person("whatsapp", "56922222222")
        for n in range(3):
            await h.router.dispatch(h.inbox.message(ana, "whatsapp", f"ana {n}"))
        await h.router.dispatch(h.inbox.message(luis, "whatsapp", "luis 0"))
        await settle()
        h.router.close_lanes()
    # Every queued message answered, then each lane ended: no idle timeout waited out.
    assert h.answerer.of(ana) == [("ana 0",), ("ana 1",), ("ana 2",)]
    assert [t - start for t in h.answerer.times(ana)] == [0, 1, 2]
    assert sorted(t.texts for t in h.answerer.answered) == [
        ("ana 0",),
        ("ana 1",),
        ("ana 2",),
        ("luis 0",),
    ]
    assert trio.current_time() - start == 3


async def test_a_web_message_swept_before_its_notice_is_checked_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The ingress counts a web message's first attempt when it stores it (`attempted`), so
    its turn need not count it again; but if a sweep queued the row before the notice came,
    the notice's copy must check the row again in the store (it may be answered by then)."""
    async with lanes(tmp_path, LaneLimits(debounce=0)) as h:
        ana = h.inbox.person("web", "s-ana")
        answering = h.answerer.hold(ana)
        notice = replace(h.inbox.visitor(ana, "hola"), attempted=True)
        [swept] = messages.pending_inbound(h.db)
        await h.router.dispatch(InboundMessage.of(swept), swept=True)  # the sweep was first
        await h.router.dispatch(notice)
        answering.set()
        await settle()
        assert h.answerer.of(ana) == [("hola",), ("hola",)]
        assert h.answerer.attempted == [False, False]
        bob = h.inbox.person("web", "s-bob")
        await h.router.dispatch(replace(h.inbox.visitor(bob, "buenas"), attempted=True))
        await settle()
        assert h.answerer.attempted == [False, False, True]  # no sweep copy: trusted


@pytest.mark.parametrize("debounce", [0, 2])
async def test_a_message_left_for_another_process_is_answered_before_the_next(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, debounce: float
) -> None:
    """In a cluster, a message that came while another process held its conversation waits
    in the store for a sweep. The lane that next holds the conversation answers it first:
    it used to answer only its own message, so the later one overtook the earlier."""
    async with lanes(tmp_path, LaneLimits(debounce=debounce), owner="nodo-a/1") as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        lease = leases.conversation(ana)
        assert leases.take(h.db, lease, "nodo-b/1")  # nodo-b is answering Ana
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 1"))
        await trio.sleep(debounce + 1)
        assert h.answerer.of(ana) == [] and pending(h.db) == ["ana 1"]  # left for nodo-b
        assert leases.release(h.db, lease, "nodo-b/1")  # done, without having seen "ana 1"
        await h.router.dispatch(h.inbox.message(ana, "whatsapp", "ana 2"))
        await trio.sleep(debounce + 1)
        if debounce:  # one reply for what Ana sent, as a burst is answered
            assert h.answerer.of(ana) == [("ana 1", "ana 2")]
        else:
            assert h.answerer.of(ana) == [("ana 1",), ("ana 2",)]
        assert pending(h.db) == []
        assert leases.holder(h.db, lease) is None  # let go once the lane had nothing left


async def test_a_message_swept_into_the_lane_behind_a_later_one_is_answered_first(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The same, when this process's sweep finds the older message after the later one's
    notice came: it is queued behind it in the lane, and still answered before it."""
    async with lanes(tmp_path, LaneLimits(debounce=0), owner="nodo-a/1") as h:
        ana = h.inbox.person("whatsapp", "56911111111")
        lease = leases.conversation(ana)
        assert leases.take(h.db, lease, "nodo-b/1")
        first = h.inbox.message(ana, "whatsapp", "ana 1")
        await h.router.dispatch(first)
        await trio.sleep(1)
        assert leases.release(h.db, lease, "nodo-b/1")
        second = h.inbox.message(ana, "whatsapp", "ana 2")
        await h.router.dispatch(second)
        await h.router.dispatch(first, swept=True)  # a sweep, before the lane ran
        await trio.sleep(1)
        replies = [messages.reply_to(h.db, m.message_id) for m in (first, second)]
        assert replies[0] is not None and replies[1] is not None
        assert replies[0].id < replies[1].id  # "ana 1" answered first
        assert pending(h.db) == []

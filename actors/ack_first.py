"""Acknowledgements before answers.

Meta waits for the 200 of every webhook and redelivers what it does not get in time. All
actors share one event loop, so in a burst the acknowledgements would queue behind the
answering of earlier messages (turns, classifications, Graph sends), and late
acknowledgements bring redeliveries: more load exactly when there is too much.

So the ingress counts the webhook requests in flight here, and each unit of answering work
for WhatsApp/Instagram (a turn, a sweep's classification, a send) runs inside
`async with gate.answering(work)`, which first passes `turn()`. While
webhooks are arriving (one in flight, or one within `QUIET`), units go through one at a
time, each at a moment when no webhook is in flight (or after waiting `MAX_DEFER`) and no
closer together than `PACE`, so what runs between two steps of an acknowledgement is about
one unit's step, not a crowd of them; work under way (a send, a classification) goes
before a new turn (`Work`), so the pipeline drains instead of filling. Answering never
stops — under a flood that keeps the ingress busy without a gap it goes on at a unit every
`MAX_DEFER` + `PACE` (about 50 a second), otherwise as fast as the gaps allow — and it
catches up afterwards, still one unit per scheduler pass, so that a new burst finds one
unit's step under way rather than every lane's; the messages wait in the store, so
nothing is lost. With no webhooks arriving and nobody waiting, `turn()` is a checkpoint.

The suite owns the one instance (like the channels), so a restarted ingress or answering
actor keeps counting on the same one. The web chat does not pass here: its visitor waits for
the answer inside their own request."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

SECONDS = 1.0
MAX_DEFER = 0.02 * SECONDS  # the longest a unit waits for a moment without webhooks
PACE = 0.001 * SECONDS  # units go no closer together than this while webhooks arrive
QUIET = 0.05 * SECONDS  # webhooks "are arriving" until this long after the last one


@dataclass
class AckFirstStatistics:
    arrivals: int  # webhook requests counted
    in_flight: int
    deferred: int  # units that waited for acknowledgements
    waited_out: int  # of those, units that went after MAX_DEFER with webhooks still in flight
    under_way: int  # units of answering work that passed and have not ended


class Work(enum.IntEnum):
    """What waits at the gate, most urgent first: work already under way (a reply to send,
    a turn to classify) goes before a new turn, so the pipeline drains instead of filling."""

    SEND = 0
    CLASSIFY = 1
    TURN = 2


@dataclass(eq=False)
class _Ticket:
    passed: bool = False
    woken: trio.Event = field(default_factory=trio.Event)  # passed, or the dispatcher now


@dataclass
class AckFirst:
    max_defer: float = MAX_DEFER
    pace: float = PACE
    quiet: float = QUIET
    arrivals: int = 0
    in_flight: int = 0
    deferred: int = 0
    waited_out: int = 0
    under_way: int = 0
    _last_arrival: float = float("-inf")
    _next_pass: float = float("-inf")
    _idle: trio.Event = field(default_factory=trio.Event)
    _dispatcher: _Ticket | None = None
    _waiting: tuple[deque[_Ticket], ...] = field(
        default_factory=lambda: tuple(deque() for _ in Work)
    )

    def __post_init__(self) -> None:
        self._idle.set()

    def arrived(self) -> None:
        """A webhook request has come in; pair with `answered()`."""
        if self.in_flight == 0:
            self._idle = trio.Event()
        self.in_flight += 1
        self.arrivals += 1
        self._last_arrival = trio.current_time()

    def answered(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def _arriving(self) -> bool:
        return bool(self.in_flight) or trio.current_time() - self._last_arrival < self.quiet

    @asynccontextmanager
    async def answering(self, work: Work) -> AsyncIterator[None]:
        """`async with gate.answering(Work.X):` around one unit of answering work: it starts
        when the gate lets it (see the module's text). Every answering path of the suite
        (the turn, a send, the classifier's sweep) enters here."""
        await self.turn(work)
        self.under_way += 1
        try:
            yield
        finally:
            self.under_way -= 1

    async def turn(self, work: Work) -> None:
        """Wait until a unit of answering work may run (see the module's text)."""
        self.deferred += self._arriving()
        ticket = _Ticket()
        self._waiting[work].append(ticket)
        if self._dispatcher is None:
            self._dispatcher = ticket
        try:
            while not ticket.passed:
                if self._dispatcher is ticket:
                    # This waiter runs the passes, one unit each, most urgent first (maybe
                    # itself), until its own turn comes; then the role goes on.
                    await self._one_pass()
                else:
                    await ticket.woken.wait()
                    ticket.woken = trio.Event()
        finally:
            if not ticket.passed:  # cancelled while waiting
                self._waiting[work].remove(ticket)
            if self._dispatcher is ticket:
                self._dispatcher = next((t for q in self._waiting for t in q), None)
                if self._dispatcher is not None:
                    self._dispatcher.woken.set()

    async def _one_pass(self) -> None:
        if self._arriving():
            await trio.sleep_until(self._next_pass)
            with trio.move_on_after(self.max_defer) as waited:
                await self._idle.wait()
            self.waited_out += waited.cancelled_caught
            self._next_pass = trio.current_time() + self.pace
        else:
            # Catching up: still one unit a scheduler pass, so that when webhooks come
            # back there is one unit's step under way, not every lane's at once.
            await trio.lowlevel.checkpoint()
        for queue in self._waiting:
            if queue:
                ticket = queue.popleft()
                ticket.passed = True
                ticket.woken.set()
                return

    def statistics(self) -> AckFirstStatistics:
        return AckFirstStatistics(
            self.arrivals, self.in_flight, self.deferred, self.waited_out, self.under_way
        )

"""Acknowledgements before answers.

Meta waits for the 200 of every webhook and redelivers what it does not get in time. All
actors share one event loop, so in a burst the acknowledgements would queue behind the
answering of earlier messages (turns, classifications, Graph sends), and late
acknowledgements bring redeliveries: more load exactly when there is too much.

So the ingress counts the webhook requests in flight here, and each unit of answering work
for WhatsApp/Instagram (a turn, a classification, a send) first passes `turn()`. While
webhooks are arriving (one in flight, or one within `QUIET`), units go through one at a
time, each at a moment when no webhook is in flight (or after waiting `MAX_DEFER`), and no
closer together than `PACE`: what runs between two steps of an acknowledgement is then at
most about one unit's step, not a crowd of them. Answering never stops — under a flood
that keeps the ingress busy without a gap it goes on at a unit every `MAX_DEFER` + `PACE`
(about 40 a second), with gaps at up to 1/`PACE` — and it catches up in the quiet after;
the messages wait in the store, so nothing is lost. With no webhooks arriving, `turn()`
costs a lock.

The suite owns the one instance (like the channels), so a restarted ingress or answering
actor keeps counting on the same one. The web chat does not pass here: its visitor waits for
the answer inside their own request."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

SECONDS = 1.0
MAX_DEFER = 0.02 * SECONDS  # the longest a unit waits for a moment without webhooks
PACE = 0.004 * SECONDS  # at most 250 units a second while webhooks are arriving
QUIET = 0.05 * SECONDS  # webhooks "are arriving" until this long after the last one


@dataclass
class AckFirstStatistics:
    arrivals: int  # webhook requests counted
    in_flight: int
    deferred: int  # units that waited for acknowledgements
    waited_out: int  # of those, units that went after MAX_DEFER with webhooks still in flight


@dataclass
class AckFirst:
    max_defer: float = MAX_DEFER
    pace: float = PACE
    quiet: float = QUIET
    arrivals: int = 0
    in_flight: int = 0
    deferred: int = 0
    waited_out: int = 0
    _last_arrival: float = float("-inf")
    _next_pass: float = float("-inf")
    _idle: trio.Event = field(default_factory=trio.Event)
    _queue: trio.Lock = field(default_factory=trio.Lock)

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

    async def turn(self) -> None:
        """Wait until a unit of answering work may run (see the module's text)."""
        async with self._queue:
            if trio.current_time() - self._last_arrival >= self.quiet and not self.in_flight:
                return
            self.deferred += 1
            await trio.sleep_until(self._next_pass)
            with trio.move_on_after(self.max_defer) as waited:
                await self._idle.wait()
            self.waited_out += waited.cancelled_caught
            self._next_pass = trio.current_time() + self.pace

    def statistics(self) -> AckFirstStatistics:
        return AckFirstStatistics(self.arrivals, self.in_flight, self.deferred, self.waited_out)

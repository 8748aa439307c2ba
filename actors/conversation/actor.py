"""The conversation actor: routes every inbound message to its conversation's lane
(`lanes.py`), where the one turn path (`turn.py`) answers it.

LLM calls wait for the model gate (in the brain), whose limit adapts to the model server.
On (re)start the actor first re-reads every pending inbound row from the store, so a crash
loses nothing; a sweep every `SWEEP_INTERVAL` picks up rows whose notice never came."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from actors.ack_first import AckFirst
from actors.lifecycle import cancel_when_set
from actors.messages import InboundMessage, NotifierNotice
from sales.failpoints import Failpoints
from store.db import Database

from .brain import Brain
from .lanes import LaneLimits, LaneRouter
from .news import News
from .turn import TurnCounters, TurnPath, TurnRules

SECONDS = 1.0
ROOM_SWEEP_DELAY = 0.1 * SECONDS
SWEEP_INTERVAL = 5 * SECONDS  # pending rows whose notice never came (a full inbox)


@dataclass
class ConversationContext:
    db: Database
    rules: TurnRules  # swapped by the suite when the owner edits them; read once a turn
    turn_timeout: float
    history_max_tokens: int
    brain: Brain | None = None  # this incarnation's model brain; None: the rules' offline one
    failpoints: Failpoints = field(default_factory=Failpoints)
    limits: LaneLimits = field(default_factory=LaneLimits)
    ack_first: AckFirst = field(default_factory=AckFirst)  # the suite's, shared
    counters: TurnCounters = field(default_factory=TurnCounters)  # outlive an incarnation
    router: LaneRouter | None = None  # the running incarnation's
    path: TurnPath | None = None
    owner: str | None = None  # this process on conversation leases (a cluster); None: alone
    news: News = field(default_factory=News)  # notices between processes (news.py)

    def use_rules(self, rules: TurnRules) -> None:
        self.rules = rules
        if self.path is not None:
            self.path.rules = rules

    def statistics(self) -> ConversationStatistics:
        lanes = len(self.router.lanes) if self.router else 0
        return ConversationStatistics(lanes, self.counters.turns, self.counters.fallbacks)


@dataclass(frozen=True)
class ConversationStatistics:
    active_lanes: int
    turns: int
    fallbacks: int


async def run(
    ctx: ConversationContext,
    stop: trio.Event,
    *,
    inbound_messages: trio.MemoryReceiveChannel[InboundMessage],
    notifier_notices: trio.MemorySendChannel[NotifierNotice] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The actor. Its channels belong to the supervisor: never closed here, so they outlive
    this incarnation."""
    ctx.path = TurnPath(
        ctx.db,
        ctx.rules,
        ctx.brain,
        notifier_notices=notifier_notices,
        ack_first=ctx.ack_first,
        turn_timeout=ctx.turn_timeout,
        history_max_tokens=ctx.history_max_tokens,
        failpoints=ctx.failpoints,
        counters=ctx.counters,
    )
    async with trio.open_nursery() as nursery:
        if ctx.owner is not None:
            await nursery.start(ctx.news.listen)
        router = ctx.router = LaneRouter(
            ctx.db, ctx.path.take, nursery, ctx.limits, ctx.owner, ctx.news
        )
        await router.sweep(starting=True)
        task_status.started()
        sweeping = trio.CancelScope()
        nursery.start_soon(_sweep_forever, router, sweeping)
        with trio.CancelScope() as intake:
            nursery.start_soon(cancel_when_set, stop, intake)
            await _intake(router, inbound_messages)
        sweeping.cancel()
        router.close_lanes()


async def _intake(
    router: LaneRouter, inbound_messages: trio.MemoryReceiveChannel[InboundMessage]
) -> None:
    while True:
        await router.dispatch(await inbound_messages.receive())
        # In a burst, take what is already queued now: one message per scheduler pass
        # (each pass runs every waiting request) left 333 of 2,000 visitors past the
        # ingress's hand-off limit (503).
        while True:
            try:
                message = inbound_messages.receive_nowait()
            except trio.WouldBlock:
                break
            await router.dispatch(message)


async def _sweep_forever(router: LaneRouter, scope: trio.CancelScope) -> None:
    with scope:  # cancelled with the intake, when the actor is asked to stop
        while True:
            with trio.move_on_after(SWEEP_INTERVAL):
                await router.room.wait()  # a lane ended while conversations were held
                await trio.sleep(ROOM_SWEEP_DELAY)  # let more end: one sweep for several
            await router.sweep()

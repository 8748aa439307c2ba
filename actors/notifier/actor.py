"""The notifier actor: delivers the outbox to WhatsApp and Instagram.

Sends of one conversation go in order (a send waiting for its retry holds back the ones
after it); different conversations go in parallel, bounded. A transient failure keeps its
next attempt time in the store, so the schedule survives a restart; a permanent one ends
`failed` with the reason; free-form text outside Meta's 24 h window ends `skipped`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import trio
from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_random_exponential

from actors.lifecycle import cancel_when_set
from actors.messages import OutboxReady
from store import messages, outbox
from store.db import Database, utc_now
from store.outbox import OutboxItem
from supervisor.failpoints import Failpoints
from supervisor.settings import Settings

from .errors import GraphError, NotConfigured
from .graph import GraphClient

log = logging.getLogger("notifier")

SECONDS = 1.0
POLL_INTERVAL = 1 * SECONDS
SEND_TIMEOUT = 15 * SECONDS
CONCURRENCY = 8
MAX_ATTEMPTS = 8
RETRY_WAIT = wait_random_exponential(multiplier=2 * SECONDS, max=600 * SECONDS)
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


@dataclass
class NotifierStatistics:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class NotifierContext:
    db: Database
    settings: Settings
    failpoints: Failpoints = field(default_factory=Failpoints)
    stats: NotifierStatistics = field(default_factory=NotifierStatistics)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, from tenacity's policy."""
    state = RetryCallState(AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    return float(RETRY_WAIT(state))


def window_open(last_user_at: str | None, now: datetime) -> bool:
    if last_user_at is None:
        return False
    then = datetime.fromisoformat(last_user_at.replace("Z", "+00:00"))
    return now - then < CUSTOMER_SERVICE_WINDOW


class Deliverer:
    def __init__(self, ctx: NotifierContext, graph: GraphClient, nursery: trio.Nursery) -> None:
        self.ctx = ctx
        self.graph = graph
        self.nursery = nursery
        self.limiter = trio.CapacityLimiter(CONCURRENCY)
        self.running: set[int] = set()
        self.stopping = False
        self.unconfigured_reported: set[str] = set()

    def start_due(self) -> None:
        for conversation_id in outbox.due_conversations(self.ctx.db, utc_now()):
            if conversation_id not in self.running:
                self.running.add(conversation_id)
                self.nursery.start_soon(self._drain, conversation_id)

    async def _drain(self, conversation_id: int) -> None:
        try:
            async with self.limiter:
                while not self.stopping:
                    found = outbox.next_for_conversation(self.ctx.db, conversation_id)
                    if found is None or found[1] > utc_now():
                        return  # nothing left, or the oldest waits for its retry time
                    await self._send(found[0])
        finally:
            self.running.discard(conversation_id)

    async def _send(self, item: OutboxItem) -> None:
        db, stats = self.ctx.db, self.ctx.stats
        if item.kind == "text" and not window_open(
            messages.last_user_message_at(db, item.conversation_id), datetime.now(UTC)
        ):
            outbox.mark_failed(
                db, item.id, "fuera de la ventana de 24 h de atención al cliente", status="skipped"
            )
            stats.skipped += 1
            return
        self.ctx.failpoints.hit("notifier.send")
        try:
            with trio.fail_after(SEND_TIMEOUT):
                if item.kind == "read":
                    await self.graph.mark_read(item.body)
                    provider_id = None
                else:
                    provider_id = await self.graph.send_text(
                        item.channel, item.recipient, item.body
                    )
        except (GraphError, trio.TooSlowError) as exc:
            self._failed(item, exc)
            return
        outbox.mark_sent(db, item.id, provider_id)
        stats.sent += 1

    def _failed(self, item: OutboxItem, exc: Exception) -> None:
        db, stats = self.ctx.db, self.ctx.stats
        reason = exc.reason if isinstance(exc, GraphError) else "timeout"
        transient = not isinstance(exc, GraphError) or exc.transient
        if isinstance(exc, NotConfigured):
            # Said once per channel, not once per message: the outbox rows keep the reason.
            if item.channel not in self.unconfigured_reported:
                self.unconfigured_reported.add(item.channel)
                log.error("%s: sends fail until it is configured", reason)
            outbox.mark_failed(db, item.id, reason)
            stats.failed += 1
            return
        if item.kind == "read":
            # A receipt is a courtesy: it never holds back the reply behind it.
            outbox.mark_failed(db, item.id, reason)
            return
        if transient and item.attempts + 1 < MAX_ATTEMPTS:
            delay = retry_delay(item.attempts + 1)
            outbox.schedule_retry(db, item.id, reason, delay)
            stats.retried += 1
            log.warning(
                "send %s to %s failed (%s); retry in %.1fs", item.id, item.channel, reason, delay
            )
            return
        outbox.mark_failed(
            db,
            item.id,
            reason if not transient else f"{reason} (tras {item.attempts + 1} intentos)",
        )
        stats.failed += 1
        log.error("send %s to %s failed for good: %s", item.id, item.channel, reason)


async def run(
    ctx: NotifierContext,
    wake: trio.MemoryReceiveChannel[OutboxReady],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`wake` belongs to the supervisor and outlives this incarnation; never closed here."""
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as http, trio.open_nursery() as nursery:
        deliverer = Deliverer(ctx, GraphClient(http, ctx.settings), nursery)
        task_status.started()
        with trio.CancelScope() as intake:
            nursery.start_soon(cancel_when_set, stop, intake)
            while True:
                deliverer.start_due()
                with trio.move_on_after(POLL_INTERVAL):
                    await wake.receive()
        # Sends under way finish (each bounded by SEND_TIMEOUT); nothing new starts.
        deliverer.stopping = True

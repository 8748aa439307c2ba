"""The notifier actor: delivers the outbox to WhatsApp and Instagram, the owner's alerts,
reminders and daily summary by e-mail and webhook, and runs the follow-up schedule.

Sends of one conversation go in order (a send waiting for its retry holds back the ones
after it); different conversations go in parallel, bounded. A transient failure keeps its
next attempt time in the store, so the schedule survives a restart; a permanent one ends
`failed` with the reason; free-form text outside Meta's 24 h window ends `skipped`.
Every decision about time (the 24 h window, follow-ups, working hours, the 08:00 summary)
reads `ctx.clock`, so tests can move it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import trio
from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_random_exponential

from actors.ack_first import AckFirst, Work
from actors.lifecycle import cancel_when_set
from actors.messages import NotifierNotice, OutboxReady
from actors.statistics import NotifierStatistics
from sales.business import BusinessConfig
from sales.failpoints import Failpoints
from sales.follow_ups import LoggedFollowUps
from sales.settings import Settings
from store import leases, messages, outbox, owner_notifications
from store.db import Database, from_text, utc_now
from store.outbox import OutboxItem
from store.owner_notifications import Notification

from .email import Mailer, MailError, compose
from .errors import GraphError, NotConfigured
from .graph import GraphClient

log = logging.getLogger("notifier")
events = logging.getLogger("business")  # one line per business event, no personal data

SECONDS = 1.0
SEND_TIMEOUT = 15 * SECONDS
CONCURRENCY = 8
MAX_DRAINS = 8 * CONCURRENCY  # conversations with a drain task (the rest wait in the store)
MAX_ATTEMPTS = 8
RETRY_WAIT = wait_random_exponential(multiplier=2 * SECONDS, max=600 * SECONDS)
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
SIMULATED = "sim:"  # recipients of /api/simulate: their sends stay in the sandbox
OWNER_MAX_ATTEMPTS = 12  # about a day of retries with the backoff below
WEBHOOK_TIMEOUT = 10 * SECONDS


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class NotifierContext:
    db: Database
    settings: Settings
    business: BusinessConfig
    failpoints: Failpoints = field(default_factory=Failpoints)
    stats: NotifierStatistics = field(default_factory=NotifierStatistics)
    clock: Callable[[], datetime] = system_clock
    ack_first: AckFirst = field(default_factory=AckFirst)  # the suite's, shared
    # Whether this process leads its cluster (actors/cluster): only the leader plans
    # follow-ups and queues the daily summary.
    leader: Callable[[], bool] = lambda: True
    # This process on outbox leases (a cluster: `outbox:<conversation>`, one sender per
    # conversation across processes); None: alone on its store, no leases.
    owner: str | None = None


def retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, from tenacity's policy."""
    state = RetryCallState(AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    return float(RETRY_WAIT(state))


def window_open(last_user_at: str | None, now: datetime) -> bool:
    if last_user_at is None:
        return False
    then = from_text(last_user_at)
    return now - then < CUSTOMER_SERVICE_WINDOW


class Deliverer:
    def __init__(self, ctx: NotifierContext, graph: GraphClient, nursery: trio.Nursery) -> None:
        self.ctx = ctx
        if ctx.owner is None:  # alone: every send still marked was this process's
            self._resend_cut(outbox.cut_by_crash(ctx.db))
        self.graph = graph
        self.nursery = nursery
        self.limiter = trio.CapacityLimiter(CONCURRENCY)
        self.running: set[int] = set()
        self.stopping = False
        self.unconfigured_reported: set[str] = set()

    def start_due(self) -> None:
        room = MAX_DRAINS - len(self.running)
        if room > 0:
            due = outbox.due_conversations(self.ctx.db, utc_now(), room, self.ctx.owner)
            for conversation_id in due:
                self.start(conversation_id)

    def start(self, conversation_id: int) -> None:
        """Drain the conversation's sends unless a drain of it is already running. Under a
        flood, conversations beyond MAX_DRAINS wait in the outbox for the next poll."""
        if conversation_id not in self.running and len(self.running) < MAX_DRAINS:
            self.running.add(conversation_id)
            self.nursery.start_soon(self._drain, conversation_id)

    def _resend_cut(self, cut: int) -> None:
        if cut:
            self.ctx.stats.sends_resent_after_crash += cut
            log.warning(
                "%d WhatsApp/Instagram send(s) were cut mid-request by a crash; sending again"
                " (at most one duplicate each)",
                cut,
            )

    def _claim(self, conversation_id: int) -> bool:
        """In a cluster, this conversation's sends are this process's while it holds its
        outbox lease; a send still marked in flight then was cut by its sender's death."""
        owner = self.ctx.owner
        if owner is None:
            return True
        if not leases.take(self.ctx.db, leases.outbox(conversation_id), owner):
            return False  # another process drains it
        self._resend_cut(outbox.cut_by_crash(self.ctx.db, conversation_id))
        return True

    async def _drain(self, conversation_id: int) -> None:
        claimed = False
        try:
            claimed = self._claim(conversation_id)
            if not claimed:
                return
            async with self.limiter:
                while not self.stopping:
                    found = outbox.next_for_conversation(self.ctx.db, conversation_id)
                    if found is None or found[1] > utc_now():
                        return  # nothing left, or the oldest waits for its retry time
                    async with self.ctx.ack_first.answering(Work.SEND):  # Meta's 200s first
                        await self._send(found[0])
        finally:
            self.running.discard(conversation_id)
            if claimed and self.ctx.owner is not None:
                leases.release(self.ctx.db, leases.outbox(conversation_id), self.ctx.owner)

    async def _send(self, item: OutboxItem) -> None:
        db, stats = self.ctx.db, self.ctx.stats
        if item.recipient.startswith(SIMULATED):
            # A demo's simulated person (POST /api/simulate/...): never sent to Meta.
            outbox.mark_sent(db, item.id, f"sandbox-{item.id}")
            stats.sent += 1
            return
        if item.kind == "text" and not window_open(
            messages.last_user_message_at(db, item.conversation_id), self.ctx.clock()
        ):
            outbox.mark_failed(
                db, item.id, "fuera de la ventana de 24 h de atención al cliente", status="skipped"
            )
            stats.skipped += 1
            return
        outbox.mark_sending(db, item.id)
        self.ctx.failpoints.hit("notifier.send")
        try:
            with trio.fail_after(SEND_TIMEOUT):
                if item.kind == "read":
                    await self.graph.mark_read(item.body)
                    provider_id = None
                elif item.kind == "template":
                    provider_id = await self.graph.send_template(item.recipient, item.body)
                else:
                    provider_id = await self.graph.send_text(
                        item.channel, item.recipient, item.body
                    )
        except (GraphError, trio.TooSlowError) as exc:
            stats.send_failed()
            self._failed(item, exc)
            return
        stats.send_went_through()
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


class OwnerDeliverer:
    """Alerts, reminders and summaries to the owner: e-mail and webhook, one at a time."""

    def __init__(self, ctx: NotifierContext, http: httpx.AsyncClient) -> None:
        self.ctx = ctx
        self.http = http
        self.mailer = Mailer(ctx.settings)
        self.leading = False  # in a cluster only the leader delivers to the owner

    def _take_over(self) -> None:
        """This process (again) delivers: what is still marked `sending` was cut by a
        crash, of this process or of the leader before it, and may have gone out."""
        cut = owner_notifications.interrupted(self.ctx.db)
        if cut:
            self.ctx.stats.owner_resent_after_crash += cut
            log.warning(
                "%d owner notification(s) were cut mid-send by a crash; sending again"
                " (at most one duplicate each)",
                cut,
            )

    async def deliver_due(self) -> None:
        db = self.ctx.db
        if not self.ctx.leader():
            self.leading = False
            await trio.lowlevel.checkpoint()
            return
        if not self.leading:
            self.leading = True
            self._take_over()
        for item in owner_notifications.due(db, utc_now()):
            owner_notifications.mark_sending(db, item.id)
            try:
                self.ctx.failpoints.hit("notifier.owner")
                await self._deliver(item)
            except (MailError, WebhookError) as exc:
                self.ctx.stats.owner_failed_once()
                self._failed(item, exc.reason, transient=exc.transient)
                continue
            self.ctx.stats.owner_went_through()
            owner_notifications.mark_sent(db, item.id)
            self.ctx.stats.owner_sent += 1
            if _is_alert(item):
                events.info(
                    "alert for lead %s sent by %s",
                    item.lead_id,
                    item.transport,
                    extra={"ctx": {"event": "alert_sent", "lead": item.lead_id}},
                )

    async def _deliver(self, item: Notification) -> None:
        s = self.ctx.settings
        ops = _is_ops(item)  # a notice to operations: OPS_EMAIL / OPS_WEBHOOK_URL first
        if item.transport == "email":
            owner = s.owner_email or self.ctx.business.notifications.ownerEmail
            to = (s.ops_email or owner) if ops else owner
            if not (to and s.email_configured):
                raise MailError("e-mail no configurado (SMTP_HOST y OWNER_EMAIL)", transient=False)
            await self.mailer.send(compose(s, to, item))
            return
        url = (s.ops_webhook_url or s.webhook_url) if ops else s.webhook_url
        if not url:
            raise WebhookError("WEBHOOK_URL no está configurado", transient=False)
        try:
            with trio.fail_after(WEBHOOK_TIMEOUT):
                response = await self.http.post(
                    url,
                    content=item.body_text.encode(),
                    headers={"Content-Type": "application/json"},
                )
        except (httpx.TransportError, trio.TooSlowError) as exc:
            # Never the URL: it may carry the hook's key.
            raise WebhookError(f"webhook: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 300:
            transient = response.status_code >= 500 or response.status_code in (408, 429)
            raise WebhookError(f"webhook: HTTP {response.status_code}", transient=transient)

    def _failed(self, item: Notification, reason: str, *, transient: bool) -> None:
        db, stats = self.ctx.db, self.ctx.stats
        retry = transient and item.attempts + 1 < OWNER_MAX_ATTEMPTS
        if _is_alert(item):
            events.info(
                "alert for lead %s failed by %s: %s (%s)",
                item.lead_id,
                item.transport,
                reason,
                "will retry" if retry else "for good",
                extra={"ctx": {"event": "alert_failed", "lead": item.lead_id}},
            )
        if retry:
            delay = retry_delay(item.attempts + 1)
            owner_notifications.schedule_retry(db, item.id, reason, delay)
            stats.owner_retried += 1
            log.warning(
                "owner %s %s failed (%s); retry in %.1fs", item.transport, item.id, reason, delay
            )
            return
        owner_notifications.mark_failed(db, item.id, reason)
        stats.owner_failed += 1
        log.error("owner %s %s failed for good: %s", item.transport, item.id, reason)


def _is_alert(item: Notification) -> bool:
    return item.event.startswith("alert_")


def _is_ops(item: Notification) -> bool:
    return item.event.startswith("ops_")


class WebhookError(Exception):
    def __init__(self, reason: str, *, transient: bool) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


async def _follow_ups_forever(ctx: NotifierContext, deliverer: Deliverer) -> None:
    while True:
        # Built each time from the business config in force (the owner may edit it).
        if ctx.leader():
            follow = LoggedFollowUps(ctx.db, ctx.business, ctx.settings, ctx.clock)
            if follow.tick():
                deliverer.start_due()
            ctx.stats.follow_up_runs += 1
        await trio.sleep(ctx.settings.scheduler_interval)


async def _owner_forever(owner: OwnerDeliverer, kicks: trio.MemoryReceiveChannel[None]) -> None:
    while True:
        await owner.deliver_due()
        with trio.move_on_after(owner.ctx.settings.notifier_poll_interval):
            await kicks.receive()


async def run(
    ctx: NotifierContext,
    stop: trio.Event,
    *,
    notifier_notices: trio.MemoryReceiveChannel[NotifierNotice],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`notifier_notices` belongs to the supervisor and outlives this incarnation; never
    closed here."""
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as http, trio.open_nursery() as nursery:
        deliverer = Deliverer(ctx, GraphClient(http, ctx.settings), nursery)
        owner = OwnerDeliverer(ctx, http)
        kick, kicks = trio.open_memory_channel[None](1)
        task_status.started()
        async with trio.open_nursery() as background:
            background.start_soon(_follow_ups_forever, ctx, deliverer)
            background.start_soon(_owner_forever, owner, kicks)
            with trio.CancelScope() as intake:
                nursery.start_soon(cancel_when_set, stop, intake)
                while True:
                    # Everything due (sends whose retry time came, notices lost to a full
                    # channel) once a poll interval; a notice starts its conversation now.
                    deliverer.start_due()
                    with trio.move_on_after(ctx.settings.notifier_poll_interval):
                        while True:
                            notice = await notifier_notices.receive()
                            if isinstance(notice, OutboxReady):
                                deliverer.start(notice.conversation_id)
                            else:
                                with contextlib.suppress(trio.WouldBlock):
                                    kick.send_nowait(None)
            # An e-mail under way ends first (a thread is not cut; bounded by its timeout).
            background.cancel_scope.cancel()
        # Sends under way finish (each bounded by SEND_TIMEOUT); nothing new starts.
        deliverer.stopping = True

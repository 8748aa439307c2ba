"""Someone is told: when this process's `/health/detailed` turns degraded or failing, and
when it recovers, one e-mail and/or webhook goes to operations (OPS_EMAIL / OPS_WEBHOOK_URL,
else the owner's OWNER_EMAIL / WEBHOOK_URL) with the reasons.

The verdict is evaluated every `OPS_CHECK_INTERVAL`; a change is told at most once per
`OPS_NOTICE_MIN_INTERVAL` (a flapping suite sends one notice, then the state it settled in).
What was last told, and when, lives in the store (store/ops_notices.py) with the notices
queued in the same transaction, so a restart neither repeats a notice nor loses one; the
notifier delivers them like the owner's alerts (retries, a final state)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import trio

from actors.messages import OpsNoticeQueued
from sales import identity
from store import ops_notices
from store.db import from_text, to_text
from store.errors import StoreError
from store.ops_notices import OpsState
from store.owner_notifications import OwnerMessage
from supervisor.logs import Redactor

from .context import IngressContext
from .health import StoreWrites, overall

log = logging.getLogger("ingress")

WORDS = {"ok": "recuperado", "degraded": "degradado", "failing": "fallando"}


def system_clock() -> datetime:
    return datetime.now(UTC)


def due(state: OpsState | None, status: str, now: datetime, min_interval: float) -> bool:
    """Whether `status` should be told now: it differs from what was last told (nothing told
    yet counts as ok), and the last notice is at least `min_interval` seconds old."""
    told = state.status if state else "ok"
    if status == told:
        return False
    if state is None or state.notified_at is None:
        return True
    return (now - from_text(state.notified_at)).total_seconds() >= min_interval


def event_of(status: str) -> str:
    return "ops_recovered" if status == "ok" else f"ops_{status}"


def transports(ctx: IngressContext) -> list[str]:
    """How operations can be reached: e-mail when SMTP and an address are set, the webhook
    when one is."""
    s = ctx.settings
    address = s.ops_email or s.owner_email or ctx.business.notifications.ownerEmail
    found = []
    if address and s.email_configured:
        found.append("email")
    if s.ops_webhook_url or s.webhook_url:
        found.append("webhook")
    return found


def compose(
    ctx: IngressContext,
    worker: str,
    told: str,
    status: str,
    reasons: Sequence[str],
    at: str,
) -> dict[str, OwnerMessage]:
    """The notice as an e-mail and as a webhook's JSON (with `text`, which Slack shows)."""
    name = ctx.business.business.name
    subject = f"[IA Comercial] {name}: servicio {WORDS[status]} ({worker})"
    head = f"IA Comercial de {name} en {worker} pasó de «{told}» a «{status}» ({at})."
    lines = [head, ""]
    if reasons:
        lines += ["Motivos:", *(f"- {r}" for r in reasons), ""]
    else:
        lines += ["Todo funciona de nuevo.", ""]
    lines.append("El detalle está en GET /health/detailed del servidor.")
    text = "\n".join(lines)
    document = {
        "event": event_of(status),
        "status": status,
        "previous": told,
        "worker": worker,
        "business": name,
        "reasons": list(reasons),
        "at": at,
        "text": f"{subject}\n{text}",
    }
    return {
        "email": OwnerMessage(subject, text, None, urgent=status == "failing"),
        "webhook": OwnerMessage(
            event_of(status), json.dumps(document, ensure_ascii=False), None, False
        ),
    }


class OpsWatch:
    """Evaluates the verdict and queues a notice when one is due."""

    def __init__(self, ctx: IngressContext, clock: Callable[[], datetime] = system_clock) -> None:
        self.ctx = ctx
        self.clock = clock
        self.worker = identity.current().name
        self.writes = StoreWrites(ctx.db, ctx.settings.disk_min_free_mb)
        self.redact = Redactor(ctx.settings.secrets())

    def check(self) -> bool:
        """One evaluation; True when a notice was queued."""
        ctx = self.ctx
        now = self.clock()
        try:
            status, found = overall(ctx, self.writes, ctx.suite.actors())
            reasons = [self.redact(r) for r in found]  # an error message could quote a secret
            state = ops_notices.state(ctx.db, self.worker)
            if not due(state, status, now, ctx.settings.ops_notice_min_interval):
                return False
            told = state.status if state else "ok"
            at = to_text(now)
            composed = compose(ctx, self.worker, told, status, reasons, at)
            ways = transports(ctx)
            queued = [(t, event_of(status), composed[t]) for t in ways]
            ops_notices.record(ctx.db, self.worker, status, reasons, at, queued)
        except StoreError as exc:
            # Nothing can be queued without the store; Prometheus' alerts still see it.
            log.warning("ops notice not queued, the store failed: %s", type(exc).__name__)
            return False
        if not ways:
            log.warning(
                "health is %s; nobody to tell (set OPS_EMAIL with SMTP_HOST, or OPS_WEBHOOK_URL)",
                status,
            )
        else:
            log.warning("health is %s (was %s); operations told by %s", status, told, ways)
        if ctx.notifier_notices is not None:
            with contextlib.suppress(trio.WouldBlock):
                ctx.notifier_notices.send_nowait(OpsNoticeQueued())
        return bool(ways)


async def watch(ctx: IngressContext) -> None:
    """Forever, every OPS_CHECK_INTERVAL (the first after one interval, once started)."""
    watcher = OpsWatch(ctx)
    while True:
        await trio.sleep(ctx.settings.ops_check_interval)
        watcher.check()

"""Why the suite is degraded, part by part, in the owner's words (Spanish): actors stopped,
restarting or crashing in a loop; the model failing; sends and alerts to the owner failing;
hot and warm leads the owner was never told about. `/health/detailed` lists them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from actors.statistics import LLMStatistics, NotifierStatistics
from store import leads
from store.db import from_text, to_text
from supervisor.supervisor import ActorState, ActorStatistics

from .context import IngressContext

SECONDS = 1.0
LLM_FAILURES_IN_A_ROW = 3
LLM_WINDOW = 5 * 60 * SECONDS  # "most answers failed lately": over this window...
LLM_WINDOW_MIN_ANSWERS = 5  # ...once it holds this many
DELIVERY_FAILURES_IN_A_ROW = 3
DELIVERY_FAILURE_FRESH = 15 * 60 * SECONDS
UNALERTED_LOOKBACK = timedelta(days=7)
NO_ALERT_CHANNEL = "no hay correo ni webhook configurado (SMTP_HOST/OWNER_EMAIL o WEBHOOK_URL)"
ALERTS_FAILING = "los avisos al dueño fallan"
BEFORE_ALERT_CHANNEL = "llegaron antes de configurar el correo o el webhook"
CRASH_LOOP_RESTARTS = 2  # crash restarts of one actor inside the supervisor's period


def actor_reasons(actors: Sequence[ActorStatistics]) -> list[str]:
    """Actors stopped, restarting, or up between crashes of a loop."""
    reasons = []
    for a in actors:
        loop = (
            f", {a.recent_restarts} reinicios recientes"
            if a.recent_restarts >= CRASH_LOOP_RESTARTS
            else ""
        )
        if a.state == ActorState.FAILED:
            reasons.append(f"actor {a.name} detenido tras fallar")
        elif a.state == ActorState.BACKING_OFF:
            reasons.append(f"actor {a.name} reiniciándose{loop}")
        elif loop:
            reasons.append(f"actor {a.name} en bucle de fallos{loop}")
    return reasons


def llm_reasons(stats: LLMStatistics, now: float) -> list[str]:
    """The model failing: its last answers, or most of them lately (`now`: trio's clock)."""
    last = stats.last_error["message"] if stats.last_error else ""
    if stats.failures_in_a_row >= LLM_FAILURES_IN_A_ROW:
        return [f"el modelo falló sus últimas {stats.failures_in_a_row} respuestas ({last})"]
    recent = [answered for at, answered in stats.recent if now - at <= LLM_WINDOW]
    failed = recent.count(False)
    if len(recent) >= LLM_WINDOW_MIN_ANSWERS and 2 * failed > len(recent):
        minutes = LLM_WINDOW / 60
        return [
            f"el modelo falló {failed} de {len(recent)} respuestas"
            f" en los últimos {minutes:g} min ({last})"
        ]
    return []


def delivery_reasons(stats: NotifierStatistics, now: datetime) -> list[str]:
    """Sends to WhatsApp/Instagram or alerts to the owner failing lately, none going through."""
    reasons = []
    for in_a_row, last_at, what in (
        (
            stats.send_failures_in_a_row,
            stats.last_send_failure_at,
            "los envíos por WhatsApp/Instagram",
        ),
        (stats.owner_failures_in_a_row, stats.owner_last_failure_at, "los avisos al dueño"),
    ):
        if (
            in_a_row >= DELIVERY_FAILURES_IN_A_ROW
            and last_at is not None
            and (now - from_text(last_at)).total_seconds() <= DELIVERY_FAILURE_FRESH
        ):
            reasons.append(f"{what} fallan: {in_a_row} intentos seguidos sin éxito")
    return reasons


def should_alert(ctx: IngressContext, found: leads.UnalertedCount) -> bool:
    """As the classifier decides: hot always, warm once the person can be contacted, each
    only when the business asks for it (`notifications.notifyOn`)."""
    if found.classification not in ctx.business.notifications.notifyOn:
        return False
    return found.classification == "caliente" or (
        found.classification == "tibio" and found.contactable
    )


def unalerted_reasons(ctx: IngressContext, now: datetime) -> list[str]:
    """Hot and warm leads the owner never heard of. Counted: leads that wrote in the last
    `UNALERTED_LOOKBACK` (7 days) and are still new (not contacted, won or lost, nor opted
    out) with no alert sent. So a restart does not hide them, and the owner clears the
    warning by contacting them (or marking them contacted). One reason per cause: no
    channel configured, alerts failing, or classified before a channel was configured.
    Counted in SQL (store/leads.py), whatever the number of leads."""
    s = ctx.settings
    owner = s.owner_email or ctx.business.notifications.ownerEmail
    configured = bool((owner and s.email_configured) or s.webhook_url)
    since = to_text(now - UNALERTED_LOOKBACK)
    by_cause: dict[str, dict[str, int]] = {}
    for found in leads.unalerted_since(ctx.db, since):
        if not should_alert(ctx, found):
            continue
        if not configured:
            cause = NO_ALERT_CHANNEL
        elif found.failed:
            cause = ALERTS_FAILING
        elif not found.alerted:
            cause = BEFORE_ALERT_CHANNEL
        else:
            continue  # queued a moment ago: the notifier is on it
        counts = by_cause.setdefault(cause, {})
        counts[found.classification] = counts.get(found.classification, 0) + found.leads
    reasons = []
    for cause, counts in by_cause.items():
        reason = f"{_leads_text(counts)} sin aviso: {cause}"
        if cause == ALERTS_FAILING:
            notify_on = tuple(ctx.business.notifications.notifyOn)
            reason += f" ({leads.last_alert_error(ctx.db, since, notify_on) or ''})"
        reasons.append(reason)
    return reasons


def _leads_text(counts: dict[str, int]) -> str:
    """How many, in words: "2 leads calientes", "1 lead tibio", "1 lead caliente y 2 tibios"."""
    hot = counts.get("caliente", 0)
    warm = counts.get("tibio", 0)
    found = [(n, word) for n, word in ((hot, "caliente"), (warm, "tibio")) if n]
    (n, word), *rest = found
    text = f"{n} lead{_s(n)} {word}{_s(n)}"
    return text + "".join(f" y {m} {other}{_s(m)}" for m, other in rest)


def _s(n: int) -> str:
    return "s" if n > 1 else ""

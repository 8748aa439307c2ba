"""Health endpoints: `/health` for uptime monitors (cheap), `/health/live`, `/health/ready`
(503 while the suite cannot take messages: the store cannot be written, or the conversation
or ingress actor is not running) and `/health/detailed` (`ok`, `degraded` or `failing`, with
the reasons). Nothing secret and no personal data in any."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import psutil
import trio
from quart import Blueprint, Response

from actors.statistics import LLMStatistics, NotifierStatistics
from store import leads, messages, outbox, owner_notifications
from store.db import Database, WriteFailure, from_text, to_text
from store.leads import Lead
from supervisor.logs import Redactor, file_failures
from supervisor.supervisor import ActorState, ActorStatistics

from .context import IngressContext
from .responses import json_response

SECONDS = 1.0
MEGABYTES = 1024 * 1024
WRITE_PROBE_INTERVAL = 3 * SECONDS  # the store's write probe and free-space check, at most
WRITE_FAILURE_FRESH = 60 * SECONDS  # a failed write of the suite counts this long
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
TAKES_MESSAGES = ("conversation", "ingress")  # without them the suite takes no message


class StoreWrites:
    """Whether the store can be written: a write probe and the free space of its disk, at most
    once per `WRITE_PROBE_INTERVAL` (never once per request), and the newest write of the
    suite's own that failed."""

    def __init__(self, db: Database, min_free_mb: int) -> None:
        self.db = db
        self.min_free_mb = min_free_mb
        self.probe: WriteFailure | None = None
        self.free_bytes: int | None = None
        self._checked_at: float | None = None

    def check(self) -> None:
        now = trio.current_time()
        if self._checked_at is not None and now - self._checked_at < WRITE_PROBE_INTERVAL:
            return
        self._checked_at = now
        self.probe = self.db.probe_write()
        try:
            self.free_bytes = psutil.disk_usage(str(self.db.path.resolve().parent)).free
        except OSError:
            self.free_bytes = None

    def failed_write(self) -> WriteFailure | None:
        failure = self.db.last_write_failure
        if failure is None or time.monotonic() - failure.clock > WRITE_FAILURE_FRESH:
            return None
        return failure

    def unwritable(self) -> list[str]:
        """Why the probe could not write: what makes the suite unready. A failed write of the
        suite's own only degrades it (unready, it would get no traffic to show writes work
        again)."""
        self.check()
        if self.probe is None:
            return []
        return [f"la base de datos no acepta escrituras ({_failure(self.probe)})"]

    def failed_writes(self) -> list[str]:
        failed = self.failed_write()
        if failed is None:
            return []
        ago = time.monotonic() - failed.clock
        return [f"una escritura en la base de datos falló hace {ago:.0f} s ({_failure(failed)})"]

    def low_disk(self) -> list[str]:
        free = self.free_bytes
        if free is None or free >= self.min_free_mb * MEGABYTES:
            return []
        return [
            f"poco espacio en el disco de la base de datos: {free // MEGABYTES} MB libres"
            f" (mínimo DISK_MIN_FREE_MB={self.min_free_mb})"
        ]

    def report(self) -> dict[str, Any]:
        failed = self.db.last_write_failure
        return {
            "writable": self.probe is None and self.failed_write() is None,
            "freeBytes": self.free_bytes,
            "minFreeBytes": self.min_free_mb * MEGABYTES,
            "lastWriteError": None
            if failed is None
            else {"type": failed.error, "message": failed.message, "at": failed.at},
        }


def _failure(failure: WriteFailure) -> str:
    return f"{failure.error}: {failure.message}"


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


def should_alert(ctx: IngressContext, lead: Lead) -> bool:
    """As the classifier decides: hot always, warm once the person can be contacted, each
    only when the business asks for it (`notifications.notifyOn`)."""
    if lead.classification not in ctx.business.notifications.notifyOn:
        return False
    contactable = bool(lead.fields.name and (lead.fields.phone or lead.fields.email))
    return lead.classification == "caliente" or (lead.classification == "tibio" and contactable)


def unalerted_reasons(ctx: IngressContext, now: datetime) -> list[str]:
    """Hot and warm leads the owner never heard of. Counted: leads that wrote in the last
    `UNALERTED_LOOKBACK` (7 days) and are still new (not contacted, won or lost, nor opted
    out) with no alert sent. So a restart does not hide them, and the owner clears the
    warning by contacting them (or marking them contacted). One reason per cause: no
    channel configured, alerts failing, or classified before a channel was configured."""
    s = ctx.settings
    owner = s.owner_email or ctx.business.notifications.ownerEmail
    configured = bool((owner and s.email_configured) or s.webhook_url)
    by_cause: dict[str, list[Lead]] = {}
    last_error = ""
    for lead in leads.unalerted_since(ctx.db, to_text(now - UNALERTED_LOOKBACK)):
        if not should_alert(ctx, lead):
            continue
        alerts = [
            n
            for n in owner_notifications.for_lead(ctx.db, lead.id)
            if n["event"].startswith("alert_")
        ]
        if any(n["status"] == "sent" for n in alerts):
            continue
        failed = [str(n["error"]) for n in alerts if n["error"]]
        if not configured:
            cause = NO_ALERT_CHANNEL
        elif failed:
            cause, last_error = ALERTS_FAILING, failed[-1]
        elif not alerts:
            cause = BEFORE_ALERT_CHANNEL
        else:
            continue  # queued a moment ago: the notifier is on it
        by_cause.setdefault(cause, []).append(lead)
    return [
        f"{_leads_text(found)} sin aviso: {cause}"
        + (f" ({last_error})" if cause == ALERTS_FAILING else "")
        for cause, found in by_cause.items()
    ]


def _leads_text(found: list[Lead]) -> str:
    """How many, in words: "2 leads calientes", "1 lead tibio", "1 lead caliente y 2 tibios"."""
    hot = sum(lead.classification == "caliente" for lead in found)
    counts = [(n, word) for n, word in ((hot, "caliente"), (len(found) - hot, "tibio")) if n]
    (n, word), *rest = counts
    text = f"{n} lead{_s(n)} {word}{_s(n)}"
    return text + "".join(f" y {m} {other}{_s(m)}" for m, other in rest)


def _s(n: int) -> str:
    return "s" if n > 1 else ""


def overall(
    ctx: IngressContext, writes: StoreWrites, actors: Sequence[ActorStatistics]
) -> tuple[str, list[str]]:
    """`ok`, `degraded` or `failing` (an actor given up on, a store that does not answer),
    with the reasons."""
    reasons = actor_reasons(actors)
    failing = any(a.state == ActorState.FAILED for a in actors)
    try:
        ctx.db.scalar("SELECT 1")
    except apsw.Error as exc:
        failing = True
        reasons.append(f"la base de datos no responde ({type(exc).__name__})")
    reasons += writes.unwritable() + writes.failed_writes() + writes.low_disk()
    reasons += llm_reasons(ctx.suite.llm_stats, trio.current_time())
    reasons += delivery_reasons(ctx.suite.notifier_stats, datetime.now(UTC))
    reasons += unalerted_reasons(ctx, datetime.now(UTC))
    logging_failure = file_failures.recent()
    if logging_failure is not None:
        reasons.append(f"los logs no se pueden escribir en disco ({logging_failure})")
    reasons += ctx.suite.problems()
    if failing:
        return "failing", reasons
    return ("degraded" if reasons or not ctx.suite.ready else "ok"), reasons


def readiness_reasons(ctx: IngressContext, writes: StoreWrites) -> list[str]:
    """Why the suite cannot take messages now (empty: it can)."""
    states = {a.name: a.state for a in ctx.suite.actors()}
    reasons = [
        f"actor {name} no está en marcha ({states.get(name, ActorState.STARTING)})"
        for name in TAKES_MESSAGES
        if states.get(name) != ActorState.RUNNING
    ]
    return reasons + writes.unwritable()


def store_report(ctx: IngressContext) -> dict[str, Any]:
    stats = ctx.db.statistics()
    last = ctx.suite.last_backup()
    return {
        "schemaVersion": stats.schema_version,
        "sizeBytes": stats.size_bytes,
        "walBytes": stats.wal_bytes,
        "lastBackup": None
        if last is None
        else {
            "at": last["at"],
            "file": last["path"],
            "sizeBytes": last["size_bytes"],
            "durationMs": last["duration_ms"],
            "ok": bool(last["ok"]),
            "error": last["error"],
        },
    }


def channels_report(ctx: IngressContext) -> dict[str, Any]:
    settings = ctx.settings
    configured = {
        "web": True,
        "whatsapp": settings.whatsapp_configured,
        "instagram": settings.instagram_configured,
    }
    report: dict[str, Any] = {}
    for channel, is_configured in configured.items():
        entry: dict[str, Any] = {
            "configured": is_configured,
            "inboundPending": messages.pending_count(ctx.db, channel),
        }
        if channel != "web":
            counts = outbox.counts(ctx.db, channel)
            entry.update(
                outboxPending=counts.pending,
                outboxFailed=counts.failed,
                lastSendError=counts.last_error,
            )
        report[channel] = entry
    return report


# The seed architecture's alert thresholds: over them, a warning (the suite still works).
THRESHOLDS = {"cpuPercent": 70.0, "memoryPercent": 80.0, "diskPercent": 80.0}
WARNING_TEXT = {
    "cpuPercent": "CPU del servidor sobre {limit:g} %",
    "memoryPercent": "memoria del servidor sobre {limit:g} %",
    "diskPercent": "disco de la base de datos sobre {limit:g} %",
}


def system_report(ctx: IngressContext) -> tuple[dict[str, float], list[str]]:
    folder = Path(ctx.settings.database_path).resolve().parent
    system = {
        "cpuPercent": psutil.cpu_percent(None),
        "memoryPercent": psutil.virtual_memory().percent,
        "diskPercent": psutil.disk_usage(str(folder)).percent,
        "loadAverage1m": os.getloadavg()[0],
    }
    warnings = [
        WARNING_TEXT[key].format(limit=limit)
        for key, limit in THRESHOLDS.items()
        if system[key] > limit
    ]
    return system, warnings


def create_health_blueprint(ctx: IngressContext) -> Blueprint:
    bp = Blueprint("health", __name__)
    process = psutil.Process(os.getpid())
    process.cpu_percent(None)  # prime the CPU samplers
    psutil.cpu_percent(None)
    redact = Redactor(ctx.settings.secrets())

    @bp.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @bp.get("/health/live")
    async def live() -> Response:
        return json_response({"status": "alive"})

    writes = StoreWrites(ctx.db, ctx.settings.disk_min_free_mb)

    @bp.get("/health/ready")
    async def ready() -> Response:
        reasons = readiness_reasons(ctx, writes)
        if not reasons:
            return json_response({"status": "ready"})
        starting = not ctx.suite.ready and all(a.restarts == 0 for a in ctx.suite.actors())
        status = "starting" if starting else "unavailable"
        return json_response({"status": status, "reasons": reasons}, status=503)

    @bp.get("/health/detailed")
    async def detailed() -> Response:
        actors = ctx.suite.actors()
        status, reasons = overall(ctx, writes, actors)
        with process.oneshot():
            memory = process.memory_info()
            proc: dict[str, Any] = {
                "pid": process.pid,
                "rssBytes": memory.rss,
                "cpuPercent": process.cpu_percent(None),
                "threads": process.num_threads(),
                "openFiles": process.num_fds(),
                "uptimeSeconds": round(time.time() - process.create_time(), 3),
            }
        system, warnings = system_report(ctx)
        report = {
            "status": status,
            "reasons": reasons,
            "version": ctx.suite.version,
            "startedAt": ctx.suite.started_at,
            "uptimeSeconds": round(time.time() - process.create_time(), 3),
            "brain": ctx.suite.brain(),
            "actors": [
                {
                    "name": a.name,
                    "state": str(a.state),
                    "restart": str(a.restart),
                    "restarts": a.restarts,
                    "recentRestarts": a.recent_restarts,
                    "backoffSeconds": a.backoff_seconds,
                    "uptimeSeconds": None
                    if a.uptime_seconds is None
                    else round(a.uptime_seconds, 3),
                    "startedAt": a.started_at,
                    "lastError": None
                    if a.last_error is None
                    else {
                        "type": a.last_error.type,
                        "message": a.last_error.message,
                        "at": a.last_error.at,
                    },
                }
                for a in actors
            ],
            "warnings": warnings,
            "queues": ctx.suite.queues(),
            "store": store_report(ctx) | writes.report(),
            "llm": ctx.suite.llm_report()
            | {
                "timeouts": ctx.suite.llm_stats.timeouts,
                "failuresInARow": ctx.suite.llm_stats.failures_in_a_row,
            },
            "channels": channels_report(ctx),
            "work": ctx.suite.work(),
            "process": proc,
            "system": system,
        }
        # An error message could quote a credential; health output never does.
        return Response(
            redact(json.dumps(report, ensure_ascii=False)),
            content_type="application/json; charset=utf-8",
        )

    return bp

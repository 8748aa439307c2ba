"""Health endpoints: `/health` for uptime monitors (cheap), `/health/live`, `/health/ready`
(503 while the suite cannot take messages: the store cannot be written, or the conversation
or ingress actor is not running) and `/health/detailed` (`ok`, `degraded` or `failing`, with
the reasons). Nothing secret and no personal data in any."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import trio
from quart import Blueprint, Response

from sales.settings import Settings
from store import messages, outbox
from store.db import Database, WriteFailure
from store.errors import StoreError
from store.postgres import PostgresDatabase
from supervisor.logs import Redactor, file_failures
from supervisor.supervisor import ActorState, ActorStatistics

from .context import IngressContext
from .health_reasons import actor_reasons, delivery_reasons, llm_reasons, unalerted_reasons
from .responses import json_response

SECONDS = 1.0
MEGABYTES = 1024 * 1024
WRITE_PROBE_INTERVAL = 3 * SECONDS  # the store's write probe and free-space check, at most
WRITE_FAILURE_FRESH = 60 * SECONDS  # a failed write of the suite counts this long
TAKES_MESSAGES = ("conversation", "ingress")  # without them the suite takes no message


def watched_folders(db: Database, settings: Settings) -> list[Path]:
    """The folders whose disk must not fill: the SQLite file's; on PostgreSQL (the server
    watches its own disk) BACKUP_DIR's, where the dumps go, and LOG_DIR's."""
    if db.path is not None:
        return [db.path]
    return [settings.backup_dir, settings.log_dir]


def _existing(path: Path) -> Path:
    """`path`, or its nearest parent that exists (a folder created on first use)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else path.parent


class StoreWrites:
    """Whether the store can be written: a write probe and the free space of its disk (the
    watched folders', on PostgreSQL), at most once per `WRITE_PROBE_INTERVAL` (never once per
    request), and the newest write of the suite's own that failed."""

    def __init__(self, db: Database, min_free_mb: int, folders: Sequence[Path] = ()) -> None:
        self.db = db
        self.min_free_mb = min_free_mb
        self.folders = list(folders) or ([db.path] if db.path is not None else [])
        self.probe: WriteFailure | None = None
        self.free_bytes: int | None = None
        self._checked_at: float | None = None

    def check(self) -> None:
        now = trio.current_time()
        if self._checked_at is not None and now - self._checked_at < WRITE_PROBE_INTERVAL:
            return
        self._checked_at = now
        self.probe = self.db.probe_write()
        free = []
        for folder in self.folders:
            with suppress(OSError):
                free.append(psutil.disk_usage(str(_existing(folder))).free)
        self.free_bytes = min(free) if free else None

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
        where = "la base de datos" if self.db.path is not None else "los respaldos y logs"
        return [
            f"poco espacio en el disco de {where}: {free // MEGABYTES} MB libres"
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


def overall(
    ctx: IngressContext, writes: StoreWrites, actors: Sequence[ActorStatistics]
) -> tuple[str, list[str]]:
    """`ok`, `degraded` or `failing` (an actor given up on, a store that does not answer),
    with the reasons."""
    reasons = actor_reasons(actors)
    failing = any(a.state == ActorState.FAILED for a in actors)
    unreachable = store_unreachable(ctx.db)
    reachable = unreachable is None
    if unreachable is not None:
        failing = True
        reasons.append(f"la base de datos no responde ({unreachable})")
    reasons += writes.unwritable() + writes.failed_writes() + writes.low_disk()
    reasons += llm_reasons(ctx.suite.llm_stats, trio.current_time())
    reasons += delivery_reasons(ctx.suite.notifier_stats, datetime.now(UTC))
    if reachable:  # what the store knows of alerts and backups, when it answers
        reasons += unalerted_reasons(ctx, datetime.now(UTC))
        reasons += ctx.suite.problems()
    logging_failure = file_failures.recent()
    if logging_failure is not None:
        reasons.append(f"los logs no se pueden escribir en disco ({logging_failure})")
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


def store_unreachable(db: Database) -> str | None:
    """None when the store answers a `SELECT 1`; else the kind of error it raised."""
    try:
        db.scalar("SELECT 1")
    except StoreError as exc:
        return exc.kind
    return None


def store_report(ctx: IngressContext) -> dict[str, Any]:
    """Which store, where (never a password), and its figures: the SQLite file's size and
    its WAL; PostgreSQL's database size (the server keeps its own WAL)."""
    db = ctx.db
    where = str(db.where) if isinstance(db, PostgresDatabase) else str(db.path)
    head: dict[str, Any] = {"backend": db.backend, "location": where}
    try:
        stats = db.statistics()
        last = ctx.suite.last_backup()
    except StoreError:
        figures: dict[str, int | None] = {"sizeBytes": None, "walBytes": None}
        if db.path is None:
            figures = {"databaseSizeBytes": None}
        return head | {"reachable": False, "schemaVersion": None, **figures, "lastBackup": None}
    figures = {"sizeBytes": stats.size_bytes, "walBytes": stats.wal_bytes}
    if db.path is None:
        figures = {"databaseSizeBytes": stats.size_bytes}
    return head | {
        "reachable": True,
        "schemaVersion": stats.schema_version,
        **figures,
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


def channels_report(ctx: IngressContext) -> dict[str, Any] | None:
    """Each channel's waiting work; None while the store does not answer."""
    try:
        return _channels(ctx)
    except StoreError:
        return None


def _channels(ctx: IngressContext) -> dict[str, Any]:
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
    folders = watched_folders(ctx.db, ctx.settings)
    system = {
        "cpuPercent": psutil.cpu_percent(None),
        "memoryPercent": psutil.virtual_memory().percent,
        "diskPercent": max(psutil.disk_usage(str(_existing(f))).percent for f in folders),
        "loadAverage1m": os.getloadavg()[0],
    }
    warnings = [
        WARNING_TEXT[key].format(limit=limit)
        for key, limit in THRESHOLDS.items()
        if system[key] > limit
    ]
    return system, warnings


def process_report(process: psutil.Process) -> dict[str, Any]:
    with process.oneshot():
        memory = process.memory_info()
        return {
            "pid": process.pid,
            "rssBytes": memory.rss,
            "cpuPercent": process.cpu_percent(None),
            "threads": process.num_threads(),
            "openFiles": process.num_fds(),
            "uptimeSeconds": round(time.time() - process.create_time(), 3),
        }


def actor_json(a: ActorStatistics) -> dict[str, Any]:
    return {
        "name": a.name,
        "state": str(a.state),
        "restart": str(a.restart),
        "restarts": a.restarts,
        "recentRestarts": a.recent_restarts,
        "backoffSeconds": a.backoff_seconds,
        "uptimeSeconds": None if a.uptime_seconds is None else round(a.uptime_seconds, 3),
        "startedAt": a.started_at,
        "lastError": None
        if a.last_error is None
        else {"type": a.last_error.type, "message": a.last_error.message, "at": a.last_error.at},
    }


def detailed_report(
    ctx: IngressContext, writes: StoreWrites, process: psutil.Process
) -> dict[str, Any]:
    """`/health/detailed`: the verdict with its reasons, then every part's figures."""
    actors = ctx.suite.actors()
    status, reasons = overall(ctx, writes, actors)
    proc = process_report(process)
    system, warnings = system_report(ctx)
    llm = ctx.suite.llm_stats
    return {
        "status": status,
        "reasons": reasons,
        "version": ctx.suite.version,
        "startedAt": ctx.suite.started_at,
        "uptimeSeconds": round(time.time() - process.create_time(), 3),
        "brain": ctx.suite.brain(),
        "actors": [actor_json(a) for a in actors],
        "warnings": warnings,
        "queues": ctx.suite.queues(),
        "store": store_report(ctx) | writes.report(),
        "llm": ctx.suite.llm_report()
        | {"timeouts": llm.timeouts, "failuresInARow": llm.failures_in_a_row},
        "channels": channels_report(ctx),
        "work": ctx.suite.work(),
        "cluster": ctx.suite.cluster_report(),
        "process": proc,
        "system": system,
    }


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

    writes = StoreWrites(
        ctx.db, ctx.settings.disk_min_free_mb, watched_folders(ctx.db, ctx.settings)
    )

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
        report = detailed_report(ctx, writes, process)
        # An error message could quote a credential; health output never does.
        return Response(
            redact(json.dumps(report, ensure_ascii=False)),
            content_type="application/json; charset=utf-8",
        )

    return bp

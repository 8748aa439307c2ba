"""Health endpoints: `/health` for uptime monitors (cheap), `/health/live`, `/health/ready`
(503 until every permanent actor runs) and `/health/detailed`. Nothing secret in any."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import apsw
import psutil
from quart import Blueprint, Response

from store import messages, outbox
from supervisor.logs import Redactor
from supervisor.supervisor import ActorState

from .context import IngressContext
from .responses import json_response


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

    @bp.get("/health/ready")
    async def ready() -> Response:
        if ctx.suite.ready:
            return json_response({"status": "ready"})
        waiting = [a.name for a in ctx.suite.actors() if a.state != ActorState.RUNNING]
        return json_response({"status": "starting", "waiting": waiting}, status=503)

    @bp.get("/health/detailed")
    async def detailed() -> Response:
        actors = ctx.suite.actors()
        down = [a.name for a in actors if a.state == ActorState.FAILED]
        restarting = [a.name for a in actors if a.state == ActorState.BACKING_OFF]
        problems = [f"actor {name} detenido tras fallar" for name in down]
        problems += [f"actor {name} reiniciándose" for name in restarting]
        try:
            ctx.db.scalar("SELECT 1")
            store_ok = True
        except apsw.Error as exc:
            store_ok = False
            problems.append(f"la base de datos no responde ({type(exc).__name__})")
        problems += ctx.suite.problems()
        if down or not store_ok:
            status = "failing"
        elif problems or not ctx.suite.ready:
            status = "degraded"
        else:
            status = "ok"
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
            "reasons": problems,
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
            "store": store_report(ctx),
            "llm": ctx.suite.llm_report(),
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

"""Health endpoints: `/health` for uptime monitors (cheap), `/health/live`, `/health/ready`
(503 until every permanent actor runs) and `/health/detailed`. Nothing secret in any."""

from __future__ import annotations

import json
import os
import time
from typing import Any

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


def create_health_blueprint(ctx: IngressContext) -> Blueprint:
    bp = Blueprint("health", __name__)
    process = psutil.Process(os.getpid())
    process.cpu_percent(None)  # prime the CPU sampler
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
        failing = [a.name for a in actors if a.state in (ActorState.FAILED, ActorState.BACKING_OFF)]
        problems = ctx.suite.problems()
        status = "ok" if ctx.suite.ready and not failing and not problems else "degraded"
        with process.oneshot():
            memory = process.memory_info()
            proc: dict[str, Any] = {
                "pid": process.pid,
                "rssBytes": memory.rss,
                "cpuPercent": process.cpu_percent(None),
                "threads": process.num_threads(),
            }
        report = {
            "status": status,
            "reasons": [f"actor {name} no está en marcha" for name in failing] + problems,
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
            "store": store_report(ctx),
            "channels": channels_report(ctx),
            "work": ctx.suite.work(),
            "process": proc,
        }
        # An error message could quote a credential; health output never does.
        return Response(
            redact(json.dumps(report, ensure_ascii=False)),
            content_type="application/json; charset=utf-8",
        )

    return bp

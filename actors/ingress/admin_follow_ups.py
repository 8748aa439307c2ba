"""Follow-ups on the dashboard: the leads due one now, one lead's attempts, and one sent by
hand (the salesperson's button), planned as the scheduler plans them (sales/follow_ups.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response

from sales.follow_ups import FollowUps, LoggedFollowUps
from store import follow_ups, lead_reports, leads
from store.db import Database
from store.leads import Lead

from .admin_auth import AdminAuth
from .admin_conversations import wake_notifier
from .context import IngressContext
from .responses import error_response, json_response

DUE_SHOWN = 100  # leads listed, longest silent first
DUE_COUNTED = 1000  # beyond: "más de 1000"


def due_json(db: Database, due: list[Lead], total: int) -> dict[str, Any]:
    return {
        "total": min(total, DUE_COUNTED),
        "totalExacto": total <= DUE_COUNTED,
        "pendientes": [
            {
                "leadId": lead.id,
                "nombre": lead.fields.name,
                "estado": lead.classification,
                "canal": lead.channel,
                "ultimoMensaje": lead.last_user_message_at,
            }
            for lead in due
        ],
        "totales": follow_ups.counts(db),
    }


def create_follow_ups_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_follow_ups", __name__)
    db = ctx.db

    def planner(on: Database = db) -> FollowUps:
        return LoggedFollowUps(on, ctx.business, ctx.settings, lambda: datetime.now(UTC))

    def due_now(reader: Database) -> dict[str, Any]:
        due, total = planner(reader).due_page(datetime.now(UTC), DUE_SHOWN, DUE_COUNTED + 1)
        return due_json(reader, due, total)

    @bp.get("/api/followups")
    @auth.required
    async def follow_ups_due() -> Response:
        data = await ctx.owner_reads().call(due_now)  # only reads: off the loop
        return json_response({"success": True, "data": data})

    @bp.get("/api/followups/<int:lead_id>")
    @auth.required
    async def follow_up_history(lead_id: int) -> Response:
        if not lead_reports.exists(db, lead_id):  # nor the sandbox's
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True, "data": follow_ups.for_lead(db, lead_id)})

    @bp.post("/api/followups/<int:lead_id>/send")
    @auth.required
    async def follow_up_now(lead_id: int) -> Response:
        lead = leads.get(db, lead_id)
        if lead is None or lead.sandbox:
            return error_response(404, "Lead no encontrado")
        with db.transaction():
            outcome = planner().send_now(lead, datetime.now(UTC))
        if not outcome["ok"]:
            return error_response(409, str(outcome["error"]))
        queued = outcome["conversation"]
        if isinstance(queued, int):
            wake_notifier(ctx, queued)
        return json_response({"success": True, "data": outcome["attempt"]})

    return bp

"""The leads behind the dashboard login (the original's paths where it had them): the list
with filters and pages, one lead with its class history and transcript, the salesperson's
updates, deletion on request, statistics and the CSV export."""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Response, request

from store import conversations, lead_reports, leads
from store.db import Database
from store.lead_reports import LeadFilter
from store.search import SearchTooShort, usable

from .admin_auth import AdminAuth
from .context import IngressContext
from .lead_export import LeadExports
from .responses import error_response, json_response, read_json_object

MAX_PAGE = 200
MAX_NOTES_CHARS = 5000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?$")


class BadFilter(ValueError):
    pass


def lead_filter(args: Any) -> LeadFilter:
    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = args.get(name)
        if value in (None, ""):
            return None
        if value not in allowed:
            raise BadFilter(f"{name} debe ser uno de: {', '.join(allowed)}")
        return str(value)

    def date(name: str) -> str | None:
        value = args.get(name)
        if value in (None, ""):
            return None
        if not _DATE.match(value):
            raise BadFilter(f"{name} debe ser una fecha AAAA-MM-DD")
        return str(value)

    contacted = choice("contactado", ("true", "false", "1", "0"))
    return LeadFilter(
        classification=choice("estado", leads.CLASSIFICATIONS),
        status=choice("seguimiento", leads.STATUSES),
        channel=choice("canal", ("web", "whatsapp", "instagram")),
        contacted=None if contacted is None else contacted in ("true", "1"),
        since=date("desde"),
        until=date("hasta"),
        text=(args.get("q") or "").strip()[:100] or None,
    )


def page_of(args: Any) -> tuple[LeadFilter, int, int]:
    """The filter, the page (from 1) and its size; BadFilter or ValueError when not."""
    f = lead_filter(args)
    page = max(1, int(args.get("pagina", "1")))
    size = min(MAX_PAGE, max(1, int(args.get("porPagina", "50"))))
    return f, page, size


def lead_detail(db: Database, lead_id: int) -> dict[str, Any] | None:
    """One lead as the dashboard shows it: with its changes of class, messages and
    conversations. None: no such real lead."""
    lead = lead_reports.get(db, lead_id)
    if lead is None:
        return None
    return {
        **lead,
        "historialClases": [
            {"estado": c, "puntaje": s, "razones": r, "fecha": at}
            for c, s, r, at in leads.history(db, lead_id)
        ],
        "mensajes": lead_reports.transcript(db, lead_id),
        "conversaciones": conversations.for_lead(db, lead_id),
    }


def update_problem(status: object, notes: object, contacted: object) -> str | None:
    """What is wrong with a salesperson's update (None: nothing)."""
    if status is not None and status not in leads.STATUSES:
        return f"seguimiento debe ser uno de: {', '.join(leads.STATUSES)}"
    if notes is not None and (not isinstance(notes, str) or len(notes) > MAX_NOTES_CHARS):
        return "notas debe ser texto de hasta 5.000 caracteres"
    if contacted is not None and not isinstance(contacted, bool):
        return "contactado debe ser true o false"
    return None


def updated(db: Database, lead_id: int, **changes: Any) -> Response:
    """Apply the salesperson's changes; the lead as it is now, or 404."""
    if not lead_reports.update(db, lead_id, **changes):
        return error_response(404, "Lead no encontrado")
    return json_response({"success": True, "data": lead_reports.get(db, lead_id)})


def create_leads_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_leads", __name__)
    _lead_routes(bp, ctx, auth)
    _report_routes(bp, ctx, auth)
    return bp


def _lead_routes(bp: Blueprint, ctx: IngressContext, auth: AdminAuth) -> None:
    db = ctx.db  # writes; the owner's reads go to ctx.owner_reads() (store/readers.py)

    @bp.get("/api/leads")
    @auth.required
    async def list_leads() -> Response:
        try:
            f, page, size = page_of(request.args)
        except BadFilter as exc:
            return error_response(400, str(exc))
        except ValueError:
            return error_response(400, "pagina y porPagina deben ser números")
        try:
            found = await ctx.owner_reads().call(lead_reports.search, f, size, (page - 1) * size)
        except SearchTooShort as exc:
            return error_response(400, str(exc))
        return json_response(
            {
                "success": True,
                "data": found.rows,
                "total": found.total,
                "totalExacto": found.exact,  # false: "más de" total (a common word)
                "pagina": page,
                "porPagina": size,
            }
        )

    @bp.get("/api/leads/<int:lead_id>")
    @auth.required
    async def one_lead(lead_id: int) -> Response:
        detail = await ctx.owner_reads().call(lead_detail, lead_id)
        if detail is None:
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True, "data": detail})

    @bp.patch("/api/leads/<int:lead_id>")
    @auth.required
    async def update_lead(lead_id: int) -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        status, notes, contacted = (
            body.get("seguimiento"),
            body.get("notas"),
            body.get("contactado"),
        )
        problem = update_problem(status, notes, contacted)
        if problem is not None:
            return error_response(400, problem)
        return updated(db, lead_id, status=status, notes=notes, contacted=contacted)

    @bp.put("/api/leads/<int:lead_id>/contactado")
    @auth.required
    async def mark_contacted(lead_id: int) -> Response:
        return updated(db, lead_id, contacted=True)

    @bp.delete("/api/leads/<int:lead_id>")
    @auth.required
    async def delete_lead(lead_id: int) -> Response:
        if not lead_reports.delete(db, lead_id):
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True})


def _report_routes(bp: Blueprint, ctx: IngressContext, auth: AdminAuth) -> None:
    exports = LeadExports(ctx.settings)

    @bp.get("/api/leads/estadisticas")
    @auth.required
    async def statistics() -> Response:
        figures = await ctx.owner_reads().call(lead_reports.statistics)
        return json_response({"success": True, "data": figures})

    @bp.get("/api/leads/export.csv")
    @auth.required
    async def export() -> Response:
        try:
            f = lead_filter(request.args)
            if f.text:
                usable(f.text)
        except (BadFilter, SearchTooShort) as exc:
            return error_response(400, str(exc))
        return await exports.response(f)

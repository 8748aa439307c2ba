"""The admin API behind the dashboard login (the original's paths where it had them):
leads with filters and pages, one lead with its transcript, the salesperson's updates,
statistics, CSV export and deletion on request."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import trio
from pydantic import ValidationError
from quart import Blueprint, Response, request

from actors.messages import OutboxReady
from sales.business import field_errors
from sales.channels import MESSAGING, TEXT_LIMIT, split_text
from sales.follow_ups import FollowUps, LoggedFollowUps
from sales.strategy import Strategy
from store import conversations, follow_ups, lead_reports, leads, messages, outbox, prompts
from store.lead_reports import LeadFilter

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response, read_json_object

events = logging.getLogger("business")  # one line per business event, no personal data

MAX_PAGE = 200
MAX_REPLY_CHARS = 4000
MAX_PROMPT_CHARS = 20_000
CSV_COLUMNS = (
    ("id", "id"),
    ("nombre", "name"),
    ("telefono", "phone"),
    ("email", "email"),
    ("servicio", "service"),
    ("comuna", "area"),
    ("urgencia", "urgency"),
    ("presupuesto", "budget"),
    ("estado", "classification"),
    ("puntaje", "score"),
    ("razones", "reasons"),
    ("seguimiento", "status"),
    ("contactado", "contacted"),
    ("notas", "notes"),
    ("canal", "channel"),
    ("creado", "created_at"),
    ("actualizado", "updated_at"),
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?$")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


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


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if isinstance(value, bool):
        value = "sí" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def create_admin_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin", __name__)
    db = ctx.db

    @bp.get("/api/leads")
    @auth.required
    async def list_leads() -> Response:
        try:
            f = lead_filter(request.args)
            page = max(1, int(request.args.get("pagina", "1")))
            size = min(MAX_PAGE, max(1, int(request.args.get("porPagina", "50"))))
        except BadFilter as exc:
            return error_response(400, str(exc))
        except ValueError:
            return error_response(400, "pagina y porPagina deben ser números")
        rows, total = lead_reports.search(db, f, size, (page - 1) * size)
        return json_response(
            {"success": True, "data": rows, "total": total, "pagina": page, "porPagina": size}
        )

    @bp.get("/api/leads/<int:lead_id>")
    @auth.required
    async def one_lead(lead_id: int) -> Response:
        lead = lead_reports.get(db, lead_id)
        if lead is None:
            return error_response(404, "Lead no encontrado")
        return json_response(
            {
                "success": True,
                "data": {
                    **lead,
                    "historialClases": [
                        {"estado": c, "puntaje": s, "razones": r, "fecha": at}
                        for c, s, r, at in leads.history(db, lead_id)
                    ],
                    "mensajes": lead_reports.transcript(db, lead_id),
                    "conversaciones": conversations.for_lead(db, lead_id),
                },
            }
        )

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
        if status is not None and status not in leads.STATUSES:
            return error_response(400, f"seguimiento debe ser uno de: {', '.join(leads.STATUSES)}")
        if notes is not None and (not isinstance(notes, str) or len(notes) > 5000):
            return error_response(400, "notas debe ser texto de hasta 5.000 caracteres")
        if contacted is not None and not isinstance(contacted, bool):
            return error_response(400, "contactado debe ser true o false")
        if not lead_reports.update(db, lead_id, status=status, notes=notes, contacted=contacted):
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True, "data": lead_reports.get(db, lead_id)})

    @bp.put("/api/leads/<int:lead_id>/contactado")
    @auth.required
    async def mark_contacted(lead_id: int) -> Response:
        if not lead_reports.update(db, lead_id, contacted=True):
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True, "data": lead_reports.get(db, lead_id)})

    @bp.delete("/api/leads/<int:lead_id>")
    @auth.required
    async def delete_lead(lead_id: int) -> Response:
        if not lead_reports.delete(db, lead_id):
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True})

    @bp.get("/api/leads/estadisticas")
    @auth.required
    async def statistics() -> Response:
        return json_response({"success": True, "data": lead_reports.statistics(db)})

    @bp.get("/api/leads/export.csv")
    @auth.required
    async def export() -> Response:
        try:
            f = lead_filter(request.args)
        except BadFilter as exc:
            return error_response(400, str(exc))
        rows, _total = lead_reports.search(db, f, limit=1_000_000)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([title for title, _key in CSV_COLUMNS])
        for row in rows:
            writer.writerow([safe_cell(row[key]) for _title, key in CSV_COLUMNS])
        response = Response(
            "\ufeff" + out.getvalue(),  # the BOM: Excel reads the accents as UTF-8
            content_type="text/csv; charset=utf-8",
        )
        response.headers["Content-Disposition"] = 'attachment; filename="leads.csv"'
        return response

    @bp.post("/api/conversations/<int:conversation_id>/pause")
    @auth.required
    async def pause(conversation_id: int) -> Response:
        return _paused(conversation_id, True)

    @bp.post("/api/conversations/<int:conversation_id>/resume")
    @auth.required
    async def resume(conversation_id: int) -> Response:
        return _paused(conversation_id, False)

    def _paused(conversation_id: int, paused: bool) -> Response:
        if not conversations.set_paused(db, conversation_id, paused):
            return error_response(404, "Conversación no encontrada")
        events.info(
            "conversation %d %s",
            conversation_id,
            "taken over by a person" if paused else "returned to the bot",
            extra={"ctx": {"event": "hand_off_taken" if paused else "hand_off_returned"}},
        )
        return json_response({"success": True, "pausada": paused})

    @bp.post("/api/conversations/<int:conversation_id>/reply")
    @auth.required
    async def reply(conversation_id: int) -> Response:
        """A person's reply from the dashboard, through the same outbox as the bot's."""
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        text = body.get("texto")
        if not isinstance(text, str) or not text.strip():
            return error_response(400, "texto es obligatorio")
        if len(text) > MAX_REPLY_CHARS:
            return error_response(400, f"texto admite hasta {MAX_REPLY_CHARS} caracteres")
        conversation = conversations.get(db, conversation_id)
        if conversation is None:
            return error_response(404, "Conversación no encontrada")
        with db.transaction():
            message_id = messages.add_human_reply(
                db, conversation.id, conversation.channel, text.strip()
            )
            if conversation.channel in MESSAGING:
                outbox.enqueue(
                    db,
                    conversation.id,
                    conversation.channel,
                    conversation.external_key,
                    "text",
                    split_text(text.strip(), TEXT_LIMIT[conversation.channel]),
                    message_id,
                )
        if conversation.channel in MESSAGING and ctx.notifier_notices is not None:
            with contextlib.suppress(trio.WouldBlock):
                ctx.notifier_notices.send_nowait(OutboxReady(conversation.id))
        events.info(
            "human reply in conversation %d (%s)",
            conversation.id,
            conversation.channel,
            extra={"ctx": {"event": "human_reply"}},
        )
        return json_response({"success": True, "id": message_id})

    def planner() -> FollowUps:
        return LoggedFollowUps(db, ctx.business, ctx.settings, lambda: datetime.now(UTC))

    @bp.get("/api/followups")
    @auth.required
    async def follow_ups_due() -> Response:
        due = planner().due(datetime.now(UTC))
        return json_response(
            {
                "success": True,
                "data": {
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
                },
            }
        )

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
        if isinstance(queued, int) and ctx.notifier_notices is not None:
            with contextlib.suppress(trio.WouldBlock):
                ctx.notifier_notices.send_nowait(OutboxReady(queued))
        return json_response({"success": True, "data": outcome["attempt"]})

    @bp.get("/api/prompt")
    @auth.required
    async def read_prompt() -> Response:
        edited = prompts.current(db)
        return json_response(
            {
                "success": True,
                "data": {
                    "texto": ctx.suite.rules,
                    "origen": "panel" if edited else "archivo",
                    "versiones": prompts.history(db),
                },
            }
        )

    @bp.put("/api/prompt")
    @auth.required
    async def write_prompt() -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        text = body.get("texto")
        if not isinstance(text, str) or not text.strip():
            return error_response(400, "texto es obligatorio")
        if len(text) > MAX_PROMPT_CHARS:
            return error_response(400, f"texto admite hasta {MAX_PROMPT_CHARS} caracteres")
        version = prompts.add(db, text.strip(), "editado en el panel")
        await ctx.suite.use_rules(text.strip())
        return json_response({"success": True, "version": version})

    async def restore(kind: str, default: tuple[str, str]) -> tuple[str, int] | Response:
        """`{"version": id}` brings that version back; `{}` the kind's default. Either way
        a new version, so the history shows the restore."""
        body = await read_json_object(empty_ok=True, whole_text=True)
        if isinstance(body, Response):
            return body
        wanted = body.get("version")
        if wanted is None:
            text, note = default
        elif isinstance(wanted, int) and (old := prompts.get(db, wanted, kind)) is not None:
            text, note = str(old["text"]), f"restaurada la versión {wanted}"
        else:
            return error_response(404, "Versión no encontrada")
        return text, prompts.add(db, text, note, kind)

    @bp.post("/api/prompt/restore")
    @auth.required
    async def restore_prompt() -> Response:
        restored = await restore("prompt", (ctx.suite.file_rules, "restaurado desde el archivo"))
        if isinstance(restored, Response):
            return restored
        await ctx.suite.use_rules(restored[0])
        return json_response({"success": True, "version": restored[1]})

    @bp.get("/api/strategy")
    @auth.required
    async def read_strategy() -> Response:
        current = prompts.current(db, "strategy")
        document = json.loads(current["text"]) if current and current["text"] else None
        return json_response(
            {
                "success": True,
                "data": {"estrategia": document, "versiones": prompts.history(db, "strategy")},
            }
        )

    @bp.put("/api/strategy")
    @auth.required
    async def write_strategy() -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        try:
            strategy = Strategy.model_validate(body)
        except ValidationError as exc:
            details = [
                {"campo": field, "mensaje": why}
                for field, why in field_errors(exc, body, spanish=True)
            ]
            return error_response(400, "Estrategia inválida", details)
        stored = strategy.model_dump_json()
        version = prompts.add(db, stored, "editada en el panel", "strategy")
        await ctx.suite.use_rules(strategy=stored)
        return json_response({"success": True, "version": version})

    @bp.post("/api/strategy/restore")
    @auth.required
    async def restore_strategy() -> Response:
        restored = await restore("strategy", ("", "sin estrategia"))
        if isinstance(restored, Response):
            return restored
        await ctx.suite.use_rules(strategy=restored[0])
        return json_response({"success": True, "version": restored[1]})

    return bp

"""The owner's view of identity: possible duplicates ("posible misma persona que …") and the
merge by hand. A typed phone or e-mail never links leads by itself; the owner decides, and
every merge is written to the audit log with who made it."""

from __future__ import annotations

from quart import Blueprint, Response, request

from store import leads

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response, read_json_object


def create_identity_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_identity", __name__)
    db = ctx.db

    @bp.get("/api/leads/<int:lead_id>/identidad")
    @auth.required
    async def identity(lead_id: int) -> Response:
        lead = leads.get(db, lead_id)
        if lead is None or lead.sandbox:
            return error_response(404, "Lead no encontrado")
        return json_response({"success": True, "data": identity_json(lead)})

    def identity_json(lead: leads.Lead) -> dict[str, object]:
        return {
            "origen": leads.provenance(db, lead),
            "posibleMismaPersona": [
                {
                    "leadId": m.lead_id,
                    "nombre": m.name,
                    "canal": m.channel,
                    "coincide": "teléfono" if m.kind == "phone" else "correo",
                    "valor": m.value,
                    "texto": f"Posible misma persona que el lead #{m.lead_id}"
                    + (f" ({m.name})" if m.name else ""),
                }
                for m in leads.possible_matches(db, lead.id)
            ],
            "uniones": leads.merges(db, lead.id),
        }

    @bp.post("/api/leads/<int:lead_id>/unir")
    @auth.required
    async def merge(lead_id: int) -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        other = body.get("con")
        if not isinstance(other, int) or isinstance(other, bool):
            return error_response(400, "con: el número del lead que se une a este")
        for candidate in (lead_id, other):
            found = leads.get(db, candidate)
            if found is None or found.sandbox:
                return error_response(404, f"Lead #{candidate} no encontrado")
        actor = f"panel@{request.remote_addr or '?'}"
        try:
            kept = leads.merge(db, other, into=lead_id, actor=actor)
        except leads.MergeError as exc:
            return error_response(400, str(exc))
        return json_response({"success": True, "data": {"leadId": kept.id, **identity_json(kept)}})

    return bp

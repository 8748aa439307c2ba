"""What the assistant could not read or does not answer, for the owner (admin only): each
unsupported or malformed message, media without text, reaction, edit, deletion and system
notice that came in by webhook, newest first, with its channel, conversation and reason."""

from __future__ import annotations

from quart import Blueprint, Response, request

from store import unsupported

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response

DEFAULT_PAGE = 50


def create_unsupported_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_unsupported", __name__)
    db = ctx.db

    @bp.get("/api/admin/unsupported")
    @auth.required
    async def list_unsupported() -> Response:
        try:
            limit = int(request.args.get("limit", DEFAULT_PAGE))
            before = request.args.get("before")
            before_id = None if before in (None, "") else int(before)
        except ValueError:
            return error_response(400, "limit y before deben ser números enteros")
        if not 1 <= limit <= unsupported.MAX_PAGE:
            return error_response(400, f"limit debe estar entre 1 y {unsupported.MAX_PAGE}")
        rows = unsupported.latest(db, limit, before_id)
        more = len(rows) == limit
        return json_response(
            {"success": True, "data": rows, "before": rows[-1]["id"] if rows and more else None}
        )

    return bp

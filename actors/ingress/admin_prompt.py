"""What the assistant is told, edited from the dashboard: the rules prompt (from the prompt
file until edited) and the sales strategy. Each change, restores too, is a new version in
the store, so the history shows it, and is put in force without restarting the process."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from quart import Blueprint, Response

from sales.business import field_errors
from sales.strategy import Strategy
from store import prompts
from store.db import Database

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response, read_json_object, read_text_field

MAX_PROMPT_CHARS = 20_000


async def restore(db: Database, kind: str, default: tuple[str, str]) -> tuple[str, int] | Response:
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


def strategy_json(db: Database) -> dict[str, Any]:
    current = prompts.current(db, "strategy")
    document = json.loads(current["text"]) if current and current["text"] else None
    return {"estrategia": document, "versiones": prompts.history(db, "strategy")}


def invalid_strategy(exc: ValidationError, body: dict[str, Any]) -> Response:
    details = [
        {"campo": field, "mensaje": why} for field, why in field_errors(exc, body, spanish=True)
    ]
    return error_response(400, "Estrategia inválida", details)


def create_prompt_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_prompt", __name__)
    _prompt_routes(bp, ctx, auth)
    _strategy_routes(bp, ctx, auth)
    return bp


def _prompt_routes(bp: Blueprint, ctx: IngressContext, auth: AdminAuth) -> None:
    db = ctx.db

    @bp.get("/api/prompt")
    @auth.required
    async def read_prompt() -> Response:
        origin = "panel" if prompts.current(db) else "archivo"
        data = {"texto": ctx.suite.rules, "origen": origin, "versiones": prompts.history(db)}
        return json_response({"success": True, "data": data})

    @bp.put("/api/prompt")
    @auth.required
    async def write_prompt() -> Response:
        text = await read_text_field("texto", MAX_PROMPT_CHARS)
        if isinstance(text, Response):
            return text
        version = prompts.add(db, text.strip(), "editado en el panel")
        await ctx.suite.use_rules(text.strip())
        return json_response({"success": True, "version": version})

    @bp.post("/api/prompt/restore")
    @auth.required
    async def restore_prompt() -> Response:
        default = (ctx.suite.file_rules, "restaurado desde el archivo")
        restored = await restore(db, "prompt", default)
        if isinstance(restored, Response):
            return restored
        await ctx.suite.use_rules(restored[0])
        return json_response({"success": True, "version": restored[1]})


def _strategy_routes(bp: Blueprint, ctx: IngressContext, auth: AdminAuth) -> None:
    db = ctx.db

    @bp.get("/api/strategy")
    @auth.required
    async def read_strategy() -> Response:
        return json_response({"success": True, "data": strategy_json(db)})

    @bp.put("/api/strategy")
    @auth.required
    async def write_strategy() -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        try:
            strategy = Strategy.model_validate(body)
        except ValidationError as exc:
            return invalid_strategy(exc, body)
        stored = strategy.model_dump_json()
        version = prompts.add(db, stored, "editada en el panel", "strategy")
        await ctx.suite.use_rules(strategy=stored)
        return json_response({"success": True, "version": version})

    @bp.post("/api/strategy/restore")
    @auth.required
    async def restore_strategy() -> Response:
        restored = await restore(db, "strategy", ("", "sin estrategia"))
        if isinstance(restored, Response):
            return restored
        await ctx.suite.use_rules(strategy=restored[0])
        return json_response({"success": True, "version": restored[1]})

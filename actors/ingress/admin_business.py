"""The business config (`config/business.json`) edited from the dashboard: read it with its
JSON schema, write it whole. A change is validated by the model `load_business` uses, written
atomically (the previous version kept beside it as `business.json.bak`) and put in force
without restarting the process."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import trio
from pydantic import ValidationError
from quart import Blueprint, Response

from sales.business import BusinessConfig, field_errors

from .admin_auth import AdminAuth
from .context import IngressContext
from .responses import error_response, json_response, read_json_object

BACKUP_SUFFIX = ".bak"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old file or the new one, never
    half of either; the old one is kept as `<name>.bak` (blocking: run it in a thread)."""
    folder = path.parent
    if path.exists():
        _replace_with(path.with_name(path.name + BACKUP_SUFFIX), path.read_bytes(), path)
    _replace_with(path, text.encode(), path)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the renames themselves survive a power cut
    finally:
        os.close(descriptor)


def _replace_with(target: Path, data: bytes, like: Path) -> None:
    """Write `data` to a temporary file beside `target`, flush it to disk, rename it over."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if like.exists():
            os.chmod(temporary, like.stat().st_mode & 0o777)  # mkstemp makes it 0600
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def create_business_blueprint(ctx: IngressContext, auth: AdminAuth) -> Blueprint:
    bp = Blueprint("admin_business", __name__)
    path = ctx.settings.business_config
    schema = BusinessConfig.model_json_schema()
    # The suite (supervisor/suite.py) has it; the SuiteStatus protocol does not say so yet.
    suite = ctx.suite
    writing = trio.Lock()  # one change at a time: written and in force in the same order

    @bp.get("/api/admin/business")
    @auth.required
    async def read_business() -> Response:
        try:
            stored: Any = json.loads(await trio.Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return error_response(500, f"No se pudo leer {path.name}: {_why(exc)}")
        return json_response(
            {"success": True, "data": {"config": stored, "path": path.name, "schema": schema}}
        )

    @bp.put("/api/admin/business")
    @auth.required
    async def write_business() -> Response:
        body = await read_json_object(whole_text=True)
        if isinstance(body, Response):
            return body
        try:
            config = BusinessConfig.model_validate(body)
        except ValidationError as exc:
            details = [
                {"campo": field, "mensaje": why}
                for field, why in field_errors(exc, body, spanish=True)
            ]
            return error_response(400, "Configuración del negocio inválida", details)
        # As sent, not as the model reads it: keys the model does not know stay in the file.
        text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
        async with writing:
            try:
                await trio.to_thread.run_sync(write_atomically, path, text)
            except OSError as exc:
                # deploy/ keeps it in /var/lib/ia-comercial/config, which the service may write.
                return error_response(
                    500, f"No se pudo guardar {path.name} en {path.parent}: {_why(exc)}"
                )
            await suite.use_business(config)
        kept = path.name + BACKUP_SUFFIX
        return json_response({"success": True, "data": {"path": path.name, "anterior": kept}})

    return bp


def _why(exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "no es JSON válido"

"""JSON answers and errors in the original system's shape: `{"success": false, "error",
"details": [{"campo", "mensaje"}]}`."""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def error_response(
    status: int, error: str, details: list[dict[str, str]] | None = None
) -> Response:
    body: dict[str, Any] = {"success": False, "error": error}
    if details:
        body["details"] = details
    return json_response(body, status)


async def read_json_object() -> dict[str, Any] | Response:
    """The request's JSON object, or the 4xx response that explains why not."""
    try:
        raw = await request.get_data(as_text=False)
    except RequestEntityTooLarge:
        return error_response(413, "El cuerpo de la petición es demasiado grande")
    if not raw:
        return error_response(
            400,
            "Datos de entrada inválidos",
            [{"campo": "body", "mensaje": "Se esperaba un objeto JSON"}],
        )
    try:
        data = json.loads(raw)
    except RecursionError:
        return error_response(
            400, "JSON inválido", [{"campo": "body", "mensaje": "anidamiento demasiado profundo"}]
        )
    except ValueError as exc:  # includes UnicodeDecodeError
        return error_response(400, "JSON inválido", [{"campo": "body", "mensaje": str(exc)}])
    if not isinstance(data, dict):
        return error_response(
            400,
            "Datos de entrada inválidos",
            [{"campo": "body", "mensaje": "Se esperaba un objeto JSON"}],
        )
    return data

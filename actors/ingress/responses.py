"""JSON answers and errors in the original system's shape: `{"success": false, "error",
"details": [{"campo", "mensaje"}]}`; and reading a JSON request body without ever a 500."""

from __future__ import annotations

import json
import re
from typing import Any

from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

JSON_TYPE = "application/json"
MAX_INT_DIGITS = 40  # a JSON integer longer than this is read as a float (infinity)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_response(data: Any, status: int = 200) -> Response:
    text = json.dumps(data, ensure_ascii=False)
    if has_lone_surrogate(text):  # not UTF-8: say it with JSON's own \u escapes instead
        text = json.dumps(data)
    return Response(text, status=status, content_type="application/json; charset=utf-8")


def error_response(
    status: int, error: str, details: list[dict[str, str]] | None = None
) -> Response:
    body: dict[str, Any] = {"success": False, "error": error}
    if details:
        body["details"] = details
    return json_response(body, status)


def has_lone_surrogate(text: str) -> bool:
    """`"\\ud83d"` is valid JSON but no text: it cannot be stored, sent or shown."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def _integer(digits: str) -> int | float:
    # Python refuses to read more than 4300 digits (a ValueError); no field wants more than 40.
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)


def loads_json(raw: str | bytes) -> Any:
    """`json.loads`, except that an absurdly long integer reads as a float instead of failing
    the whole body. Raises ValueError (UnicodeDecodeError, JSONDecodeError) or RecursionError."""
    return json.loads(raw, parse_int=_integer)


def json_problem(exc: ValueError | RecursionError) -> str:
    """Why a body is not JSON, in Spanish."""
    if isinstance(exc, RecursionError):
        return "anidamiento demasiado profundo"
    if isinstance(exc, UnicodeDecodeError):
        return "el cuerpo no es texto UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"no es JSON válido (línea {exc.lineno}, columna {exc.colno})"
    return "no es JSON válido"


def _any_lone_surrogate(data: Any) -> bool:
    """A lone surrogate in any key or string of a decoded body (iterative: bodies may nest)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def read_json_object(
    *, empty_ok: bool = False, whole_text: bool = False
) -> dict[str, Any] | Response:
    """The request's JSON object, or the 4xx response that explains why not. `whole_text`:
    a lone surrogate anywhere is refused (for routes that store what they are given without
    checking each field; the chat checks its fields itself, naming them). Only a body sent
    as `application/json` is read: a cross-site form can send text/plain or a form, but not
    that type without the browser asking first (CORS preflight, which nothing here allows)."""
    if request.mimetype != JSON_TYPE:
        return error_response(
            415,
            "El cuerpo debe ser JSON",
            [{"campo": "Content-Type", "mensaje": f"Se esperaba {JSON_TYPE}"}],
        )
    try:
        raw = await request.get_data(as_text=False)
    except RequestEntityTooLarge:
        return error_response(413, "El cuerpo de la petición es demasiado grande")
    if not raw and empty_ok:
        return {}
    if not raw:
        return error_response(
            400,
            "Datos de entrada inválidos",
            [{"campo": "body", "mensaje": "Se esperaba un objeto JSON"}],
        )
    try:
        data = loads_json(raw)
    except (ValueError, RecursionError) as exc:
        return error_response(
            400, "JSON inválido", [{"campo": "body", "mensaje": json_problem(exc)}]
        )
    if not isinstance(data, dict):
        return error_response(
            400,
            "Datos de entrada inválidos",
            [{"campo": "body", "mensaje": "Se esperaba un objeto JSON"}],
        )
    if whole_text and _any_lone_surrogate(data):
        return error_response(
            400,
            "Texto inválido",
            [
                {
                    "campo": "body",
                    "mensaje": "contiene un carácter Unicode incompleto (\\ud800-\\udfff)",
                }
            ],
        )
    return data


async def read_text_field(name: str, limit: int) -> str | Response:
    """A required, non-blank text field of the request's JSON object (at most `limit`
    characters), or the 400 that says why not."""
    body = await read_json_object(whole_text=True)
    if isinstance(body, Response):
        return body
    text = body.get(name)
    if not isinstance(text, str) or not text.strip():
        return error_response(400, f"{name} es obligatorio")
    if len(text) > limit:
        return error_response(400, f"{name} admite hasta {limit} caracteres")
    return text

"""Dashboard login: one admin password (`ADMIN_PASSWORD`, or an argon2
`ADMIN_PASSWORD_HASH`), server-side sessions in a cookie (256-bit random, HttpOnly,
SameSite=Strict; `Secure` with the `__Host-` prefix over HTTPS), a CSRF token for every
state-changing request, idle and absolute timeouts, and login attempts throttled per client
address (a noisy client never locks out the others). Sessions, their CSRF tokens and the
failed attempts live in the store, so every process of a cluster sees the same ones."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from quart import Blueprint, Response, g, request

from store import admin_sessions, login_failures
from store.admin_sessions import Session

from .context import IngressContext
from .responses import error_response, json_response, read_json_object

COOKIE = "ia_admin"
SECURE_COOKIE = "__Host-ia_admin"
CSRF_HEADER = "X-CSRF-Token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FAILURES = 5  # per client address and window
FAILURE_WINDOW = 60.0  # seconds
NOT_CONFIGURED = (
    "El panel no tiene contraseña: define ADMIN_PASSWORD (o ADMIN_PASSWORD_HASH, que da"
    " `ia-comercial hash-password`) y reinicia."
)

Handler = Callable[..., Awaitable[Response]]
events = logging.getLogger("business")  # one line per business event, no personal data


class AdminAuth:
    def __init__(self, ctx: IngressContext) -> None:
        self.ctx = ctx
        self.hasher = PasswordHasher()
        s = ctx.settings
        self.idle = timedelta(seconds=s.session_idle)
        self.absolute = timedelta(seconds=s.session_max)
        self._plain = hashlib.sha256((s.admin_password or "").encode()).digest()

    def password_ok(self, given: str) -> bool:
        s = self.ctx.settings
        if s.admin_password_hash:
            try:
                return bool(self.hasher.verify(s.admin_password_hash, given))
            except (VerificationError, InvalidHashError):
                return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._plain)

    def session(self) -> Session | None:
        token = request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)
        if not token:
            return None
        return admin_sessions.touch(self.ctx.db, token, self.idle, self.absolute)

    def required(self, handler: Handler) -> Handler:
        """Admin only: 503 unconfigured, 401 without a session, 403 without the CSRF token
        on a state-changing request."""

        @wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Response:
            if not self.ctx.settings.admin_configured:
                return error_response(503, NOT_CONFIGURED)
            session = self.session()
            if session is None:
                return error_response(401, "Inicia sesión en el panel")
            if request.method in STATE_CHANGING:
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                    return error_response(403, f"Falta el encabezado {CSRF_HEADER} de la sesión")
            g.admin_session = session
            return await handler(*args, **kwargs)

        guarded.admin_only = True  # type: ignore[attr-defined]  # for the route audit test
        return guarded

    def blueprint(self) -> Blueprint:
        bp = Blueprint("auth", __name__)

        @bp.post("/api/auth/login")
        async def login() -> Response:
            if not self.ctx.settings.admin_configured:
                return error_response(503, NOT_CONFIGURED)
            client = request.remote_addr or "?"
            # One attempt counts as a failure from the moment it is taken, before the password
            # is read, so concurrent requests (of any process: the count is in the store)
            # cannot all pass the check at once; a success takes it back.
            wait = login_failures.attempt(self.ctx.db, client, MAX_FAILURES, FAILURE_WINDOW)
            if wait:
                _login_event("refused (too many attempts)", client)
                response = error_response(429, "Demasiados intentos; espera un momento")
                response.headers["Retry-After"] = str(int(wait) + 1)
                return response
            body = await read_json_object(whole_text=True)
            if isinstance(body, Response):
                _login_event("failed", client)
                return body  # (the attempt stays counted)
            password = body.get("password")
            if not isinstance(password, str) or not self.password_ok(password):
                _login_event("failed", client)
                return error_response(401, "Contraseña incorrecta")  # the attempt stays counted
            login_failures.succeeded(self.ctx.db, client)
            _login_event("ok", client)
            token, csrf = admin_sessions.create(self.ctx.db, client)
            response = json_response({"success": True, "csrfToken": csrf})
            secure = request.scheme == "https"
            response.set_cookie(
                SECURE_COOKIE if secure else COOKIE,
                token,
                max_age=int(self.absolute.total_seconds()),
                path="/",
                secure=secure,
                httponly=True,
                samesite="Strict",
            )
            return response

        @bp.post("/api/auth/logout")
        @self.required
        async def logout() -> Response:
            token = request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE) or ""
            admin_sessions.end(self.ctx.db, token)
            response = json_response({"success": True})
            response.delete_cookie(COOKIE, path="/")
            response.delete_cookie(SECURE_COOKIE, path="/", secure=True)
            return response

        @bp.get("/api/auth/session")
        @self.required
        async def current() -> Response:
            session: Session = g.admin_session
            return json_response({"success": True, "csrfToken": session.csrf})

        return bp


def _login_event(outcome: str, client: str) -> None:
    event = "login_" + outcome.split()[0]
    events.info("login %s from %s", outcome, client, extra={"ctx": {"event": event}})

"""The HTTP application: pages from public/, the chat API and health."""

from __future__ import annotations

import logging
from pathlib import Path

from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .admin import create_admin_blueprint
from .admin_auth import AdminAuth
from .admin_identity import create_identity_blueprint
from .admin_unsupported import create_unsupported_blueprint
from .chat import create_chat_blueprint
from .context import IngressContext
from .health import create_health_blueprint
from .metrics import Metrics
from .responses import error_response, json_response
from .simulate import create_simulate_blueprint, owner_logged_in
from .webhooks import create_webhooks_blueprint

log = logging.getLogger("ingress")

MEGABYTES = 1024 * 1024
MAX_BODY_BYTES = 1 * MEGABYTES
# No inline script anywhere; nothing from other origins; never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
# /demo without a login (and without DEMO_MODE): where to go, in plain HTML.
DEMO_LOG_IN = """<!doctype html>
<html lang="es">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo — IA Comercial</title><link rel="stylesheet" href="/assets/demo.css"></head>
<body><main class="card">
<h1>La demo es para el dueño del negocio</h1>
<p>Inicia sesión en <a href="/dashboard">el panel</a> y vuelve a <a href="/demo">/demo</a>.</p>
</main></body>
</html>
"""
_HTTP_MESSAGES = {
    400: "Petición inválida",
    404: "No encontrado",
    405: "Método no permitido",
    413: "El cuerpo de la petición es demasiado grande",
}


def create_app(ctx: IngressContext) -> QuartTrio:
    public = Path(ctx.settings.public_dir).resolve()
    # Assets under /assets; pages by explicit routes, so /api/* never falls through to files.
    app = QuartTrio("ia_comercial", static_folder=str(public / "assets"), static_url_path="/assets")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_AS_ASCII"] = False
    app.register_blueprint(create_chat_blueprint(ctx))
    app.register_blueprint(create_health_blueprint(ctx))
    app.register_blueprint(create_webhooks_blueprint(ctx))
    auth = AdminAuth(ctx)
    app.register_blueprint(auth.blueprint())
    app.register_blueprint(create_admin_blueprint(ctx, auth))
    app.register_blueprint(create_simulate_blueprint(ctx, auth))
    app.register_blueprint(create_identity_blueprint(ctx, auth))
    app.register_blueprint(create_unsupported_blueprint(ctx, auth))
    metrics = Metrics(ctx)
    metrics.instrument(app)
    app.register_blueprint(metrics.blueprint())

    @app.get("/")
    async def index() -> Response:
        return await send_from_directory(public, "index.html")

    @app.get("/demo")
    async def demo() -> Response:
        # The demo writes (into the sandbox): the owner's, or anyone's on a demo server.
        if not (ctx.settings.demo_mode or owner_logged_in(ctx, auth)):
            response = Response(DEMO_LOG_IN, status=401, content_type="text/html; charset=utf-8")
            response.headers["Cache-Control"] = "no-store"
            return response
        return await send_from_directory(public, "demo.html")

    @app.get("/dashboard")
    async def dashboard() -> Response:
        # The page itself is public; every piece of data on it needs the admin session.
        return await send_from_directory(public, "dashboard.html")

    @app.get("/api/business")
    async def business() -> Response:
        """What the public pages may show of the business: name, slogan, colours."""
        b = ctx.business
        return json_response(
            {
                "name": b.business.name,
                "displayName": b.display_name,
                "slogan": b.branding.slogan,
                "primaryColor": b.branding.primaryColor,
                "secondaryColor": b.branding.secondaryColor,
                "logo": b.branding.logo,
                "formality": b.conversationStyle.formality,
            }
        )

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return error_response(status, _HTTP_MESSAGES.get(status, exc.name))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        # Logged with its traceback for us; the user gets a plain message.
        log.error("unhandled error in a request: %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "Error interno. Intenta de nuevo en unos segundos.")

    @app.after_request
    async def security_headers(response: Response) -> Response:
        if request.path.startswith("/api/"):
            # Leads, conversations, exports: personal data never kept by a browser or proxy.
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app

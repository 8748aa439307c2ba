"""The HTTP application: the API blueprints put together, pages from public/, CORS for the
sites in ALLOWED_ORIGINS, security headers on every answer and errors in plain words."""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from store.errors import StoreUnavailable

from .admin_auth import AdminAuth
from .admin_business import create_business_blueprint
from .admin_conversations import create_conversations_blueprint
from .admin_follow_ups import create_follow_ups_blueprint
from .admin_identity import create_identity_blueprint
from .admin_leads import create_leads_blueprint
from .admin_prompt import create_prompt_blueprint
from .admin_unsupported import create_unsupported_blueprint
from .chat import RETRY_AFTER_SECONDS, STORE_UNAVAILABLE, create_chat_blueprint
from .context import IngressContext
from .health import create_health_blueprint
from .metrics import Metrics
from .responses import error_response, json_response
from .simulate import create_simulate_blueprint, owner_logged_in
from .webhooks import create_webhooks_blueprint

if TYPE_CHECKING:
    from sales.business import BusinessConfig

log = logging.getLogger("ingress")

MEGABYTES = 1024 * 1024
MAX_BODY_BYTES = 1 * MEGABYTES
# No inline script anywhere; nothing from other origins; never framed (but the chat page,
# by the sites in ALLOWED_ORIGINS: see framed_by).
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors "
)
CONTENT_SECURITY_POLICY = _POLICY + "'none'"
# On every answer (a page may set its own policy first: the chat page's framed_by).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
)
# Leads, conversations, exports: personal data never kept by a browser or proxy.
API_HEADERS = (("Cache-Control", "no-store"),)
# The chat API that a site in ALLOWED_ORIGINS may call from its own pages (CORS).
CORS_PATHS = re.compile(r"/api/(chat|chat/reset|chat/session/[^/]+|business)")
CORS_MAX_AGE = 10 * 60  # seconds a browser may keep a preflight's answer
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


def framed_by(origins: tuple[str, ...]) -> str:
    """The policy of the chat page: itself, and the sites that embed it with widget.js."""
    return _POLICY + " ".join(("'self'", *origins))


def chat_greeting(b: BusinessConfig) -> str:
    """The chat page's first words: business.json's `conversationStyle.greeting`, or one
    made from the business's name in its formality."""
    custom = (b.conversationStyle.model_extra or {}).get("greeting")
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    te = "le" if b.conversationStyle.formality == "usted" else "te"
    return (
        f"{te.capitalize()} damos la bienvenida a {b.business.name}. ¿En qué {te} podemos ayudar?"
    )


def privacy_page(template: str, b: BusinessConfig, uses_llm: bool) -> str:
    """public/privacidad.html with the business's name and contact filled in, as text."""
    # The business's public address; never the owner's alert address (notifications).
    if b.business.email:
        address = html.escape(b.business.email)
        reach = f'<a href="mailto:{address}">{address}</a>'
    else:
        reach = html.escape(b.business.phone or "este mismo chat")
    model = (
        "Para redactar las respuestas, el asistente usa un servicio de inteligencia artificial"
        " de un proveedor externo, que recibe el texto de la conversación solo para ese fin."
        if uses_llm
        else ""
    )
    return (
        template.replace("{{negocio}}", html.escape(b.business.name))
        .replace("{{contacto}}", reach)
        .replace("{{modelo}}", model)
    )


def business_json(b: BusinessConfig) -> dict[str, object]:
    """What the public pages may show of the business: name, slogan, colours, the chat's
    greeting and quick replies, the contact for personal-data requests."""
    return {
        "name": b.business.name,
        "displayName": b.display_name,
        "slogan": b.branding.slogan,
        "primaryColor": b.branding.primaryColor,
        "secondaryColor": b.branding.secondaryColor,
        "logo": b.branding.logo,
        "formality": b.conversationStyle.formality,
        "greeting": chat_greeting(b),
        "services": [{"id": s.id, "name": s.name} for s in b.services],
        "email": b.business.email,
    }


def create_app(ctx: IngressContext) -> QuartTrio:
    public = Path(ctx.settings.public_dir).resolve()
    # Assets under /assets; pages by explicit routes, so /api/* never falls through to files.
    app = QuartTrio("ia_comercial", static_folder=str(public / "assets"), static_url_path="/assets")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_AS_ASCII"] = False
    auth = _register_blueprints(app, ctx)
    _page_routes(app, ctx, auth, public)
    _cors(app, frozenset(ctx.settings.allowed_origins))
    _error_handlers(app)
    app.after_request(security_headers)
    return app


def _register_blueprints(app: QuartTrio, ctx: IngressContext) -> AdminAuth:
    """The APIs, and the metrics that time every request; the admin's login, for the pages."""
    app.register_blueprint(create_chat_blueprint(ctx))
    app.register_blueprint(create_health_blueprint(ctx))
    app.register_blueprint(create_webhooks_blueprint(ctx))
    auth = AdminAuth(ctx)
    app.register_blueprint(auth.blueprint())
    for admin in (
        create_leads_blueprint,
        create_conversations_blueprint,
        create_follow_ups_blueprint,
        create_prompt_blueprint,
        create_simulate_blueprint,
        create_identity_blueprint,
        create_unsupported_blueprint,
        create_business_blueprint,
    ):
        app.register_blueprint(admin(ctx, auth))
    metrics = Metrics(ctx)
    metrics.instrument(app)
    app.extensions["ia_metrics"] = metrics  # for the plain chat path (fast_chat.py)
    app.register_blueprint(metrics.blueprint())
    return auth


def _page_routes(app: QuartTrio, ctx: IngressContext, auth: AdminAuth, public: Path) -> None:
    chat_page_policy = framed_by(ctx.settings.allowed_origins)

    @app.get("/")
    async def index() -> Response:
        # Also the widget's frame (/?embed=1): framed by the listed sites only. Browsers that
        # know frame-ancestors ignore X-Frame-Options; older ones keep the frame same-origin.
        # Read whole, not streamed from the file: a browser refusing the frame drops the
        # connection mid-body, and the open file would wait for the garbage collector.
        page = await trio.Path(public / "index.html").read_bytes()
        response = Response(page, content_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = chat_page_policy
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    @app.get("/widget.js")
    async def widget() -> Response:
        """The launcher a site puts on its pages: `<script src=".../widget.js" async>`."""
        response = await send_from_directory(public, "widget.js")
        response.headers["Cache-Control"] = "public, max-age=300"  # a change reaches sites soon
        return response

    @app.get("/privacidad")
    async def privacy() -> Response:
        template = await trio.Path(public / "privacidad.html").read_text(encoding="utf-8")
        page = privacy_page(template, ctx.business, uses_llm=not ctx.settings.offline)
        return Response(page, content_type="text/html; charset=utf-8")

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
        return json_response(business_json(ctx.business))


def _cors(app: QuartTrio, allowed_origins: frozenset[str]) -> None:
    """The chat API for the sites in ALLOWED_ORIGINS: their preflights answered, their
    calls given the CORS headers."""

    def listed_origin() -> str | None:
        """The request's Origin when it is a listed site calling the chat API."""
        origin = request.headers.get("Origin")
        if origin in allowed_origins and CORS_PATHS.fullmatch(request.path):
            return origin
        return None

    @app.before_request
    async def cors_preflight() -> Response | None:
        # Anyone else's preflight gets the default OPTIONS answer: no CORS headers, refused.
        if request.method != "OPTIONS" or listed_origin() is None:
            return None
        response = Response("", status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)
        return response

    @app.after_request
    async def cors_headers(response: Response) -> Response:
        if CORS_PATHS.fullmatch(request.path):
            response.vary.add("Origin")
            if origin := listed_origin():
                # Never Allow-Credentials: the chat API needs no cookie, the admin's stays home.
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        return response


def _error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return error_response(status, _HTTP_MESSAGES.get(status, exc.name))

    @app.errorhandler(StoreUnavailable)
    async def store_unavailable(exc: StoreUnavailable) -> Response:
        # The store cannot be reached or written now: retry later (Meta redelivers on 503).
        log.warning("store unavailable for a request: %s", exc.kind)
        response = error_response(503, STORE_UNAVAILABLE)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        # Logged with its traceback for us; the user gets a plain message.
        log.error("unhandled error in a request: %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "Error interno. Intenta de nuevo en unos segundos.")


async def security_headers(response: Response) -> Response:
    if request.path.startswith("/api/"):
        for name, value in API_HEADERS:
            response.headers.setdefault(name, value)
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    return response

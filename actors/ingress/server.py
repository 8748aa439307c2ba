"""Serve the app with hypercorn inside the actor's nursery.

Ready once the socket is bound. On stop, hypercorn stops accepting at once; requests in
flight get `GRACEFUL_TIMEOUT` to finish; then the server is cancelled. We count in-flight
requests ourselves because hypercorn's own graceful wait also waits on idle keep-alive
connections (a browser tab holding one delays every shutdown by the whole timeout)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.ack_first import AckFirst

from .app import create_app
from .context import IngressContext
from .proxy import TrustedProxy, parse_networks
from .webhooks import WEBHOOK_PATHS

log = logging.getLogger("ingress")

SECONDS = 1.0
GRACEFUL_TIMEOUT = 10 * SECONDS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InFlightRequests:
    """ASGI middleware: counts HTTP requests from arrival to the last byte of the response,
    and tells `acks` of the webhook deliveries among them (acknowledgements go first)."""

    def __init__(self, app: ASGIApp, acks: AckFirst) -> None:
        self.app = app
        self.acks = acks
        self.active = 0
        self._idle = trio.Event()
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.active += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        webhook = scope["method"] == "POST" and scope["path"] in WEBHOOK_PATHS
        if webhook:
            self.acks.arrived()
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self.active -= 1
                if self.active == 0:
                    self._idle.set()
                if webhook:
                    self.acks.answered()

        async def tracking_send(message: Message) -> None:
            try:
                await send(message)
            finally:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    finish()

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            finish()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 5 * SECONDS
    return config


async def run(
    ctx: IngressContext,
    bound: list[str],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`bound` receives the listening URLs (port 0 picks a free port)."""
    behind = TrustedProxy(
        cast(ASGIApp, create_app(ctx)), parse_networks(ctx.settings.trusted_proxies)
    )
    app = InFlightRequests(cast(ASGIApp, behind), ctx.ack_first)
    config = hypercorn_config(ctx.settings.host, bound_port(bound, ctx.settings.port))
    async with trio.open_nursery() as nursery:
        asgi = cast(Any, app)  # hypercorn's ASGI types are stricter than the protocol needs
        urls = await nursery.start(partial(serve, asgi, config, shutdown_trigger=stop.wait))
        bound[:] = list(urls)
        log.info("listening on %s", ", ".join(urls))
        task_status.started()
        await stop.wait()  # hypercorn has stopped accepting
        with trio.move_on_after(GRACEFUL_TIMEOUT) as grace:
            await app.wait_idle()
        if grace.cancelled_caught:
            log.warning(
                "%d request(s) still running after %.0fs; cutting them off",
                app.active,
                GRACEFUL_TIMEOUT,
            )
        nursery.cancel_scope.cancel()


def bound_port(bound: list[str], configured: int) -> int:
    """After a restart, keep the port the first incarnation got (matters for port 0)."""
    if configured == 0 and bound:
        return int(bound[0].rsplit(":", 1)[1])
    return configured

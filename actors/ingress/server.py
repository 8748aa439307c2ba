"""Serve the app with hypercorn inside the actor's nursery.

Ready once the socket is bound. On stop, hypercorn stops accepting at once; requests in
flight get `GRACEFUL_TIMEOUT` to finish; then the server is cancelled. We count in-flight
requests ourselves because hypercorn's own graceful wait also waits on idle keep-alive
connections (a browser tab holding one delays every shutdown by the whole timeout).

`ReusableConnections` keeps keep-alive connections answering after a response sent before
the request body was read (a 413, a refusal before parsing)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.ack_first import AckFirst

from . import connections, ops_watch
from .app import MEGABYTES, create_app
from .context import IngressContext
from .fast_chat import FastChat
from .proxy import TrustedProxy, parse_networks
from .webhooks import WEBHOOK_PATHS

log = logging.getLogger("ingress")

SECONDS = 1.0
GRACEFUL_TIMEOUT = 10 * SECONDS
KEEP_ALIVE_TIMEOUT = 5 * SECONDS  # nginx's upstream keepalive_timeout must stay below it
# A response waits for the rest of a body this small (nginx's client_max_body_size), so the
# connection can be reused; a bigger or slower body gets `Connection: close`.
DRAIN_LIMIT = 2 * MEGABYTES
DRAIN_TIMEOUT = 5 * SECONDS
RECYCLE_TIMEOUT = 2 * SECONDS
# A burst of visitors connects at once; the listen queue holds them until they are accepted
# (hypercorn's default of 100 made a burst of 900 lose connections). The kernel caps it at
# net.core.somaxconn (4096 since Linux 5.4, 128 before).
BACKLOG = 4096
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

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


class RequestBody:
    """How much of one request's body has arrived, as seen through the app's `receive`."""

    def __init__(self, declared: int | None) -> None:
        self.received = 0
        self.complete = False
        self.settled = trio.Event()  # complete, past DRAIN_LIMIT, or the client left
        if declared is not None and declared > DRAIN_LIMIT:
            self.settled.set()

    @classmethod
    def of(cls, scope: Scope) -> RequestBody:
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length" and value.strip().isdigit():
                return cls(int(value))
        return cls(None)  # chunked, or no body (its end arrives at once)

    def saw(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        if self.complete or self.received > DRAIN_LIMIT or message["type"] == "http.disconnect":
            self.settled.set()


class ReusableConnections:
    """ASGI middleware: after any response, the keep-alive connection answers the next
    request or is closed.

    Hypercorn recycles an HTTP/1.1 connection only once the whole request body has arrived,
    and closes it otherwise, both inside the app's last `send`. quart-trio cancels that very
    task as soon as hypercorn tells it the stream is over, so the close (and the restart of
    the keep-alive timer) was cut off: after a 413 the connection hung, unanswered, for
    good. So the last send is shielded (bounded), and a response waits for the rest of a
    body up to `DRAIN_LIMIT` (the framework keeps reading it); past that it says
    `Connection: close`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = RequestBody.of(scope)
        # Keep-alive and `Connection` are HTTP/1's: HTTP/2 ends streams, and forbids the header.
        http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")

        async def tracking_receive() -> Message:
            message = await receive()
            body.saw(message)
            return message

        async def reusing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and http1 and not body.complete:
                with trio.move_on_after(DRAIN_TIMEOUT):
                    await body.settled.wait()
                if not body.complete:
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with trio.move_on_after(RECYCLE_TIMEOUT, shield=True):
                    await send(message)
            else:
                await send(message)

        await self.app(scope, tracking_receive, reusing_send)


def hypercorn_config(host: str, port: int, listen_fd: int | None = None) -> Config:
    """`listen_fd`: a socket already listening (a worker's, from its parent), served through
    a duplicate so that this incarnation closing it leaves the next one the original."""
    config = Config()
    config.bind = [f"fd://{os.dup(listen_fd)}" if listen_fd is not None else f"{host}:{port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.backlog = BACKLOG
    return config


def kernel_backlog_cap() -> int | None:
    """net.core.somaxconn, which caps every listen backlog (None where it cannot be read)."""
    try:
        return int(SOMAXCONN.read_text())
    except (OSError, ValueError):
        return None


async def run(
    ctx: IngressContext,
    bound: list[str],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`bound` receives the listening URLs (port 0 picks a free port)."""
    connections.install()
    quart = create_app(ctx)
    behind = TrustedProxy(cast(ASGIApp, quart), parse_networks(ctx.settings.trusted_proxies))
    reusable = ReusableConnections(cast(ASGIApp, behind))
    # The common chat request answered in plain ASGI; anything else goes on to Quart.
    fast = FastChat(cast(ASGIApp, reusable), ctx, quart.extensions["ia_metrics"])
    app = InFlightRequests(cast(ASGIApp, fast), ctx.ack_first)
    settings = ctx.settings
    config = hypercorn_config(settings.host, bound_port(bound, settings.port), settings.listen_fd)
    try:
        await _serve(ctx, app, config, bound, stop, task_status)
    finally:
        if ctx.readers is not None:  # the owner's read connections (opened when first used)
            ctx.readers.close()
            ctx.readers = None


async def _serve(
    ctx: IngressContext,
    app: InFlightRequests,
    config: Config,
    bound: list[str],
    stop: trio.Event,
    task_status: trio.TaskStatus[None],
) -> None:
    async with trio.open_nursery() as nursery:
        asgi = cast(Any, app)  # hypercorn's ASGI types are stricter than the protocol needs
        urls = await nursery.start(partial(serve, asgi, config, shutdown_trigger=stop.wait))
        bound[:] = list(urls)
        log.info("listening on %s", ", ".join(urls))
        cap = kernel_backlog_cap()
        if cap is not None and cap < BACKLOG:
            log.warning(
                "listen backlog capped at %d by net.core.somaxconn (wanted %d): raise it for"
                " bursts of visitors (sysctl -w net.core.somaxconn=%d)",
                cap,
                BACKLOG,
                BACKLOG,
            )
        task_status.started()
        nursery.start_soon(ops_watch.watch, ctx)  # tells operations when health degrades
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

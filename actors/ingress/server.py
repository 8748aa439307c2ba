"""Serve the app with hypercorn inside the actor's nursery.

Ready once the socket is bound; on stop, hypercorn stops accepting and in-flight requests get
`GRACEFUL_TIMEOUT` to finish before they are cancelled."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import create_app
from .context import IngressContext

log = logging.getLogger("ingress")

SECONDS = 1.0
GRACEFUL_TIMEOUT = 10 * SECONDS


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
    app = create_app(ctx)
    config = hypercorn_config(ctx.settings.host, bound_port(bound, ctx.settings.port))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        bound[:] = list(urls)
        log.info("listening on %s", ", ".join(urls))
        task_status.started()


def bound_port(bound: list[str], configured: int) -> int:
    """After a restart, keep the port the first incarnation got (matters for port 0)."""
    if configured == 0 and bound:
        return int(bound[0].rsplit(":", 1)[1])
    return configured

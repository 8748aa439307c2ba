"""Fakes of external services: real servers on 127.0.0.1 speaking the real protocol."""

from __future__ import annotations

from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio


async def serve_on_loopback(nursery: trio.Nursery, app: QuartTrio) -> str:
    """Serve `app` on a free port of 127.0.0.1 in `nursery`; return its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    urls = await nursery.start(partial(serve, app, config))
    return str(urls[0])

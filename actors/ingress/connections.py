"""hypercorn's HTTP connection on trio, with two costs per request taken out.

Profiled on the chat path (bench/vs_original.py --profile), hypercorn's `TCPServer` spent on
every request of a keep-alive connection:

- **an idle-timeout task stopped and another started** (`TrioSingleTask.restart`: a task
  spawned through `nursery.start` and the old one cancelled). Here one watcher lives as long
  as the connection and requests only move its cancel scope's deadline: to infinity while a
  request is in flight, to `keep_alive_timeout` from now once the connection is idle again.
- **one `send_all` per piece of a response** (the head, then the body, then an empty
  end-of-message). Here a final response's head waits for the next piece written after it
  and goes out with it in one `send_all`; an empty piece is not written at all. The head
  never waits for time: hypercorn writes the first body piece (or the end) right after it.
  A `100 Continue` is not held: the client waits for it before sending its body.

Behaviour is hypercorn's otherwise: an idle connection closes after `keep_alive_timeout`;
when the server stops, idle connections close at once and a busy one when its request is
done (tests/ingress/test_connections.py drives each case over real sockets).

`install()` makes `hypercorn.trio.serve` build these connections. It checks that hypercorn
still has the shape this class was written against (the version range is pinned in
pyproject.toml) and leaves hypercorn as it is, with a warning, when it has not."""

from __future__ import annotations

import logging
from math import inf

import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.tcp_server import TCPServer

log = logging.getLogger("ingress")

RESPONSE_HEAD = b"HTTP/1.1 "
HEAD_END = b"\r\n\r\n"
# What `TCPServer` must have for the subclass to be sound (checked by `install`).
EXPECTED = ("protocol_send", "_idle_timeout", "_initiate_server_close", "idle_task", "stream")


class KeptAliveConnection(TCPServer):
    """One client connection (HTTP/1.1 or h2), served as hypercorn serves it, with one idle
    watcher for its life and a response's head written with its first body piece."""

    _idle: trio.CancelScope | None = None
    _busy = False
    _head: bytes = b""

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            await self._write(event.data)
        elif isinstance(event, Updated):
            self._mark(idle=event.idle)
        else:
            if isinstance(event, Closed):
                await self._flush()
                self._mark(idle=True, closing=True)  # the watcher has nothing left to wait for
            await super().protocol_send(event)

    async def _write(self, data: bytes) -> None:
        if not self._head and _final_head(data):
            self._head = data  # goes out with the next piece
            return
        if self._head:
            data, self._head = self._head + data, b""
        if data:
            await super().protocol_send(RawData(data=data))

    async def _flush(self) -> None:
        if self._head:
            await self._write(b"")

    def _mark(self, *, idle: bool, closing: bool = False) -> None:
        """A request began (not idle), the connection waits for the next one (idle), or it
        is closing."""
        self._busy = not idle
        if self._idle is None:
            return
        if not idle:
            self._idle.deadline = inf
        elif closing or self.context.terminated.is_set():
            self._idle.deadline = -inf  # closing, or the server is stopping: close now
        else:
            self._idle.deadline = trio.current_time() + self.config.keep_alive_timeout

    async def _idle_timeout(self) -> None:
        """Started once per connection (by `TCPServer.run`): close it when it has been idle
        for `keep_alive_timeout`, or when the server stops and it is idle (a busy one closes
        as soon as its request is done: `_mark` ends the wait)."""
        with trio.CancelScope() as self._idle:
            self._mark(idle=not self._busy)
            await self.context.terminated.wait()
            while self._busy:
                await trio.sleep_forever()  # until `_mark(idle=True)` moves the deadline
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def _final_head(data: bytes) -> bool:
    """The head of a final response (an HTTP/1.1 status line of 2xx-5xx and its headers).
    A 1xx (`100 Continue`) goes out at once: the client waits for it before its body."""
    return data.startswith(RESPONSE_HEAD) and data.endswith(HEAD_END) and data[9:10] != b"1"


def install() -> bool:
    """Make `hypercorn.trio.serve` use `KeptAliveConnection`; False (hypercorn's own
    connection kept, a warning logged) when hypercorn is not the shape it was written for."""
    missing = [name for name in EXPECTED if not _has(name)]
    if missing or getattr(hypercorn.trio.run, "TCPServer", None) not in (
        TCPServer,
        KeptAliveConnection,
    ):
        log.warning("hypercorn's TCPServer changed (%s); serving with it as it is", missing)
        return False
    setattr(hypercorn.trio.run, "TCPServer", KeptAliveConnection)  # noqa: B010 (not exported)
    return True


def _has(name: str) -> bool:
    if hasattr(TCPServer, name):
        return True
    init = TCPServer.__init__.__code__
    return name in init.co_names  # attributes set in __init__

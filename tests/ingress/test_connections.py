"""hypercorn's connection with one idle watcher and coalesced writes
(actors/ingress/connections.py), over real sockets: keep-alive, idle and busy timeouts,
shutdown, streaming and empty bodies behave as hypercorn's own connection does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hypercorn.trio.run
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.ingress import connections
from tests.conftest import make_settings, running_suite

KEEP_ALIVE = 0.3
SLOW = 3 * KEEP_ALIVE
NO_CLOSE = 2.0  # seconds a test waits to see a connection stay open
GRACE = 8.0  # hypercorn's graceful_timeout in these tests


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if path == "/slow":
        await trio.sleep(SLOW)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await scope["state"]["release"].wait()
        await send({"type": "http.response.body", "body": b"last"})
        return
    body = b"" if path == "/empty" else b"hello"
    if path == "/echo":  # the request's body, read whole before answering
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def server(
    release: trio.Event | None = None,
    finished: trio.Event | None = None,
    connection: type[connections.KeptAliveConnection] | None = None,
) -> AsyncIterator[tuple[int, trio.Event]]:
    """hypercorn serving `app`; `finished` is set when its `serve` has returned;
    `connection`: a subclass of ours to serve with."""
    assert connections.install()
    if connection is not None:
        hypercorn.trio.run.TCPServer = connection  # type: ignore[attr-defined]
    config = Config()
    config.graceful_timeout = GRACE
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = KEEP_ALIVE
    config.accesslog = None
    stop = trio.Event()
    state = {"release": trio.Event() if release is None else release}

    async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = state
        await app(scope, receive, send)

    async def serving(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(with_state, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
        if finished is not None:
            finished.set()

    try:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(serving)
            yield int(urls[0].rsplit(":", 1)[1]), stop
            stop.set()
    finally:
        hypercorn.trio.run.TCPServer = connections.KeptAliveConnection  # type: ignore[attr-defined]


async def read_response(stream: trio.SocketStream) -> bytes:
    """One whole response with a Content-Length body (b"" if the server closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += await stream.receive_some()
    return data


async def closed_within(stream: trio.SocketStream, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        return await stream.receive_some() == b""
    return False


async def test_the_server_builds_these_connections() -> None:
    assert connections.install()
    assert hypercorn.trio.run.TCPServer is connections.KeptAliveConnection  # type: ignore[attr-defined]


async def test_a_kept_alive_connection_answers_and_closes_when_idle() -> None:
    async with server() as (port, _stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            for _ in range(3):
                await stream.send_all(request("/"))
                response = await read_response(stream)
                assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello")
            started = trio.current_time()
            assert await closed_within(stream, NO_CLOSE)
            assert trio.current_time() - started >= KEEP_ALIVE * 0.8


async def test_a_request_longer_than_the_idle_timeout_is_not_cut() -> None:
    async with server() as (port, _stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request("/slow"))
            assert (await read_response(stream)).endswith(b"hello")
            # and the idle clock restarts after it: open again for a moment
            await stream.send_all(request("/"))
            assert (await read_response(stream)).endswith(b"hello")


async def test_a_client_waiting_for_100_continue_hears_it_at_once() -> None:
    # curl sends `Expect: 100-continue` for bodies over 1 KiB and waits for the 100 before
    # the body: a 100 held back for the next piece would stall every such request.
    async with server() as (port, _stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            head = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            await stream.send_all(f"{head}Expect: 100-continue\r\n\r\n".encode())
            with trio.fail_after(NO_CLOSE / 2):
                seen = await stream.receive_some()
            assert seen.startswith(b"HTTP/1.1 100")
            await stream.send_all(b"howdy")
            assert (await read_response(stream)).endswith(b"howdy")


async def test_an_empty_body_still_sends_its_head() -> None:
    async with server() as (port, _stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request("/empty"))
            response = await read_response(stream)
            assert response.startswith(b"HTTP/1.1 200")
            assert b"content-length: 0" in response.lower()


async def test_a_stream_shows_its_head_and_first_piece_before_it_ends() -> None:
    release = trio.Event()
    async with server(release) as (port, _stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request("/stream"))
            seen = b""
            with trio.fail_after(NO_CLOSE):
                while b"first" not in seen:
                    seen += await stream.receive_some()
            assert seen.startswith(b"HTTP/1.1 200")
            release.set()
            with trio.fail_after(NO_CLOSE):
                while b"last" not in seen:
                    seen += await stream.receive_some()


async def test_stopping_closes_idle_connections_and_lets_a_busy_one_finish() -> None:
    finished = trio.Event()
    async with server(finished=finished) as (port, stop):
        async with await trio.open_tcp_stream("127.0.0.1", port) as idle:
            await idle.send_all(request("/"))
            await read_response(idle)
            async with await trio.open_tcp_stream("127.0.0.1", port) as busy:
                await busy.send_all(request("/slow"))
                await trio.sleep(SLOW / 3)  # the slow request is in flight
                stop.set()
                assert await closed_within(idle, KEEP_ALIVE / 2)  # at once, not after timeout
                assert (await read_response(busy)).endswith(b"hello")
                assert await closed_within(busy, NO_CLOSE)
                # no connection task lingers: hypercorn's serve returns well before its
                # graceful timeout would cut them off
                with trio.fail_after(GRACE / 2):
                    await finished.wait()


async def test_the_suite_answers_over_one_kept_alive_connection(tmp_path: Any) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        for n in range(3):
            r = await client.post("/api/chat", json={"message": f"hola {n}", "sessionId": "k"})
            assert r.status_code == 200
        assert hypercorn.trio.run.TCPServer is connections.KeptAliveConnection  # type: ignore[attr-defined]


class CountedStream:
    """A connection's socket stream that notes each `send_all` (what reaches the kernel)."""

    def __init__(self, stream: Any, writes: list[bytes]) -> None:
        self._stream, self._writes = stream, writes

    async def send_all(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        await self._stream.send_all(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


async def test_a_response_goes_out_in_one_write() -> None:
    writes: list[bytes] = []

    class Counted(connections.KeptAliveConnection):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.stream = CountedStream(self.stream, writes)  # type: ignore[assignment]

    async with (
        server(connection=Counted) as (port, _stop),
        await trio.open_tcp_stream("127.0.0.1", port) as stream,
    ):
        for path in ("/", "/empty"):
            await stream.send_all(request(path))
            await read_response(stream)
    assert len(writes) == 2  # head and body together; the empty body's head alone
    assert writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b"hello")

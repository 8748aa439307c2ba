"""Keep-alive connections after refusals, spoken by hand on one socket (no client pooling,
no retries): a body that was never read must not leave the connection hanging."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors.ingress import server
from tests.conftest import make_settings, running_suite
from tests.meta import META_ENV

MEGABYTE = 1024 * 1024
SECONDS = 1.0
ANSWER_TIMEOUT = 20 * SECONDS  # generous: a hang is what fails, not slowness
# Bodies past the suite's 1 MiB limit, refused before they are read; and one it never reads.
REFUSED = [
    ("POST", "/api/chat", 2 * MEGABYTE, 413),
    ("POST", "/api/whatsapp/webhook", 2 * MEGABYTE, 413),
    ("POST", "/api/instagram/webhook", MEGABYTE + 1, 413),
    ("POST", "/api/whatsapp/webhook", MEGABYTE // 2, 401),  # no signature
    ("POST", "/api/leads/1/unir", MEGABYTE, 401),  # the owner's: nobody logged in
    ("POST", "/api/no-existe", MEGABYTE, 404),
    ("POST", "/api/business", MEGABYTE, 405),
]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


class KeepAliveClient:
    """One HTTP/1.1 connection: requests written and responses parsed by hand."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def send(
        self, method: str, path: str, body: bytes = b"", *, chunked: bool = False
    ) -> None:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n"
        )
        if chunked:
            pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        await self.stream.send_all(head.encode() + body)

    async def response(self) -> RawResponse | None:
        """The next response, or None if the server closed the connection first."""
        while b"\r\n\r\n" not in self.buffer:
            if not await self._receive():
                assert not self.buffer, f"cut off inside a response: {bytes(self.buffer)!r}"
                return None
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))  # the suite never chunks these
        self.buffer[:] = rest
        while len(self.buffer) < length:
            assert await self._receive(), "cut off inside a response body"
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        try:
            return not await self._receive()
        except trio.BrokenResourceError:  # a reset: the server had unread bytes of ours
            return True

    async def _receive(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)


async def next_request_answered(client: KeepAliveClient, refusal: RawResponse) -> bool:
    """After `refusal`, the connection answers the next request (True), or was closed as
    the refusal said it would be (False). Anything else fails; a hang trips `fail_after`."""
    if refusal.closes:
        assert await client.closed_by_server()
        return False
    await client.send("GET", "/api/business")
    answer = await client.response()
    assert answer is not None, "closed without saying Connection: close"
    assert answer.status == 200 and b'"name"' in answer.body
    return True


async def refuse_then_ask(
    stream: trio.abc.Stream, method: str, path: str, size: int, status: int
) -> bool:
    async with stream:
        client = KeepAliveClient(stream)
        await client.send(method, path, b"x" * size)
        refusal = await client.response()
        assert refusal is not None and refusal.status == status, (path, refusal)
        return await next_request_answered(client, refusal)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


async def test_every_refusal_leaves_the_connection_answering(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ADMIN_PASSWORD="clave-KNOWN-keepalive", **META_ENV)
    async with running_suite(settings) as (suite, _client):
        for method, path, size, status in REFUSED:
            with trio.fail_after(ANSWER_TIMEOUT):
                stream = await trio.open_tcp_stream(*host_port(suite.url))
                # Within DRAIN_LIMIT the rest of the body is read, so the connection stays.
                assert await refuse_then_ask(stream, method, path, size, status), path


async def test_a_chunked_body_too_big_is_drained_too(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        with trio.fail_after(ANSWER_TIMEOUT):
            async with await trio.open_tcp_stream(*host_port(suite.url)) as stream:
                client = KeepAliveClient(stream)
                await client.send("POST", "/api/chat", b"x" * 2 * MEGABYTE, chunked=True)
                refusal = await client.response()
                assert refusal is not None and refusal.status == 413
                assert await next_request_answered(client, refusal)


async def test_a_body_past_the_drain_limit_closes_the_connection(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        with trio.fail_after(ANSWER_TIMEOUT):
            async with await trio.open_tcp_stream(*host_port(suite.url)) as stream:
                # Announces 64 MiB, sends the start of it: nobody waits for the rest.
                head = (
                    "POST /api/chat HTTP/1.1\r\nHost: localhost\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {64 * MEGABYTE}\r\n\r\n"
                )
                await stream.send_all(head.encode() + b"x" * 65536)
                client = KeepAliveClient(stream)
                refusal = await client.response()
                assert refusal is not None and refusal.status == 413 and refusal.closes
                assert await client.closed_by_server()


async def test_idle_connections_are_closed_after_the_keep_alive_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer restarts after every response, a refused one included: an idle
    connection is closed, not held open for good."""
    keep_alive = 1 * SECONDS
    monkeypatch.setattr(server, "KEEP_ALIVE_TIMEOUT", keep_alive)
    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        with trio.fail_after(ANSWER_TIMEOUT):
            async with await trio.open_tcp_stream(*host_port(suite.url)) as stream:
                client = KeepAliveClient(stream)
                await client.send("POST", "/api/chat", b"x" * 2 * MEGABYTE)
                refusal = await client.response()
                assert refusal is not None and refusal.status == 413
                # Idle for less than the timeout after each response: still open, although
                # the last request comes later than the timeout after the refusal.
                for _ in range(2):
                    await trio.sleep(0.6 * keep_alive)
                    assert await next_request_answered(client, refusal)
                answered = trio.current_time()
                assert await client.closed_by_server()
                idle = trio.current_time() - answered
        # Closed by this timeout, not by hypercorn's default or the suite's own 5 s.
        assert 0.5 * keep_alive < idle < 4 * SECONDS

"""An open-loop HTTP/1.1 load client on raw trio sockets: requests are pre-built bytes and
responses are read by their Content-Length, so the client costs a fraction of a
millisecond a request and the figures measure the server, not the client (an httpx
client on the same two cores cost ~1.5 ms a request and added its own queueing).

Requests leave on a fixed schedule (`rate` a second) whatever the server does, over a
pool of keep-alive connections, and each latency runs from the request's scheduled time,
so a slow server cannot hide its queueing (no coordinated omission)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class OpenLoopResult:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    every = {"Content-Type": "application/json", **(headers or {})}
    lines += [f"{k}: {v}" for k, v in every.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its whole response; the status code."""
        await self.stream.send_all(request)
        while b"\r\n\r\n" not in self.buffer:
            await self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            await self._more()
        self.buffer = self.buffer[length:]
        return int(lines[0].split()[1])

    async def _more(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("connection closed by the server")
        self.buffer += data


async def open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int = 50
) -> OpenLoopResult:
    latencies: list[float] = []
    errors = 0
    free_send, free = trio.open_memory_channel[Connection](connections)
    for _ in range(connections):
        free_send.send_nowait(Connection(await trio.open_tcp_stream(host, port)))
    start = trio.current_time() + 0.2

    async def one(i: int, request: bytes) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await trio.sleep_until(scheduled)
        connection = await free.receive()
        try:
            status = await connection.exchange(request)
            errors += status != 200
            free_send.send_nowait(connection)
        except (trio.BrokenResourceError, ValueError, IndexError):
            errors += 1
            free_send.send_nowait(Connection(await trio.open_tcp_stream(host, port)))
        latencies.append((trio.current_time() - scheduled) * 1000)

    async with trio.open_nursery() as nursery:
        for i, request in enumerate(requests):
            nursery.start_soon(one, i, request)
    while True:
        try:
            await free.receive_nowait().stream.aclose()
        except trio.WouldBlock:
            break
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return OpenLoopResult(len(latencies), errors, pick(0.50), pick(0.99), latencies[-1])

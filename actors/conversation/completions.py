"""POST /chat/completions over kept-alive HTTP/1.1 connections of our own (h11 on trio
streams, TLS for https): the brain's non-streaming call.

The openai SDK's `client.post` costs ~1.2 ms of CPU a call here (a pydantic options model,
headers rebuilt, httpx2 and httpcore2 underneath); h11 on a kept-alive trio stream, a few
hundred microseconds. The SDK still streams (`stream=True`), and takes every call when a
proxy is configured in the environment (it honours HTTPS_PROXY; this does not).
A kept-alive connection that the server closed meanwhile is retried once on a new one
(nothing was answered on it)."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11
import trio

MAX_IDLE = 64  # connections kept for reuse (the model gate bounds the calls at once)
READ_SIZE = 65536
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


class ConnectionFailed(Exception):
    """The model server could not be reached, or broke the connection mid-answer."""


class TimedOut(Exception):
    """The model server did not answer within the call's timeout."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    content: bytes


def proxy_configured(environ: dict[str, str] | None = None) -> bool:
    environ = dict(os.environ) if environ is None else environ
    return any(environ.get(name) for name in PROXY_VARIABLES)


class _Connection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[Answer, bool]:
        """One request and its answer; whether the connection can carry another."""
        out = self.h11.send(request) or b""
        out += self.h11.send(h11.Data(data=body)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(out)
        status, headers, parts = 0, {}, []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(bytes(await self.stream.receive_some(READ_SIZE)))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionFailed("the model server closed the connection")
        reusable = self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
        if reusable:
            self.h11.start_next_cycle()
        return Answer(status, headers, b"".join(parts)), reusable


class ChatCompletions:
    """The model server's /chat/completions, JSON in and out."""

    def __init__(self, base_url: str | None, api_key: str, timeout: float) -> None:
        url = urlsplit((base_url or DEFAULT_BASE_URL).rstrip("/"))
        self.tls = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.tls else 80)
        self.target = f"{url.path}/chat/completions".encode()
        self.timeout = timeout
        host = self.host if url.port is None else f"{self.host}:{self.port}"
        self._headers = [
            (b"Host", host.encode()),
            (b"Authorization", f"Bearer {api_key}".encode()),
            (b"Content-Type", b"application/json"),
            (b"Accept", b"application/json"),
            (b"User-Agent", b"ia-comercial"),
        ]
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context() if self.tls else None

    async def post(self, body: dict[str, Any]) -> Answer:
        payload = json.dumps(body, ensure_ascii=False).encode()
        request = h11.Request(
            method="POST",
            target=self.target,
            headers=[*self._headers, (b"Content-Length", str(len(payload)).encode())],
        )
        try:
            with trio.fail_after(self.timeout):
                return await self._post(request, payload)
        except trio.TooSlowError:
            raise TimedOut(f"no answer in {self.timeout:g} s") from None

    async def _post(self, request: h11.Request, payload: bytes) -> Answer:
        while self._idle:  # a kept-alive connection the server closed meanwhile: the next
            connection = self._idle.pop()
            try:
                return await self._on(connection, request, payload)
            except (ConnectionFailed, trio.BrokenResourceError, h11.ProtocolError, OSError):
                continue
        return await self._on(await self._connect(), request, payload)

    async def _on(self, connection: _Connection, request: h11.Request, payload: bytes) -> Answer:
        try:
            answer, reusable = await connection.exchange(request, payload)
        except (trio.BrokenResourceError, h11.ProtocolError, OSError) as exc:
            await trio.aclose_forcefully(connection.stream)
            raise ConnectionFailed(f"the connection broke: {type(exc).__name__}") from exc
        except BaseException:  # a timeout or a cancellation: the answer is not read whole
            await trio.aclose_forcefully(connection.stream)
            raise
        if reusable and len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
        else:
            await trio.aclose_forcefully(connection.stream)
        return answer

    async def _connect(self) -> _Connection:
        try:
            if self._ssl is not None:
                stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(
                    self.host, self.port, ssl_context=self._ssl
                )
            else:
                stream = await trio.open_tcp_stream(self.host, self.port)
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect: {exc.strerror or exc}") from exc
        return _Connection(stream)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.stream.aclose()

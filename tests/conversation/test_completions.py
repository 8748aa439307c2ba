"""The model's non-streaming call on our own connections, against a real HTTP/1.1 server on
127.0.0.1 written with h11: kept-alive reuse, chunked answers, a connection the server
closed meanwhile, a server that never answers, and one that is not there."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial

import h11
import pytest
import trio

from actors.conversation.completions import ChatCompletions, ConnectionFailed, TimedOut

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
Answer = Callable[[int, dict[str, object]], Awaitable[Reply]]


class Server:
    """Answers each request with `answer(n, body)`; `close_after` closes a connection after
    that many answers on it (as a server's keep-alive timeout would)."""

    def __init__(self, answer: Answer, close_after: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[dict[str, object]] = []
        self.connections = 0
        self.headers: list[dict[bytes, bytes]] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        connection = h11.Connection(h11.SERVER)
        answered = 0
        async with stream:
            while True:
                body = b""
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        connection.receive_data(data)
                    elif isinstance(event, h11.Request):
                        self.headers.append(dict(event.headers))
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                request = json.loads(body)
                self.requests.append(request)
                status, headers, content = await self.answer(len(self.requests), request)
                out = connection.send(h11.Response(status_code=status, headers=headers)) or b""
                out += connection.send(h11.Data(data=content)) or b""
                out += connection.send(h11.EndOfMessage()) or b""
                await stream.send_all(out)
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return
                connection.start_next_cycle()


async def serving(nursery: trio.Nursery, server: Server) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}}], "usage": {}}).encode()


async def ok(n: int, _body: dict[str, object]) -> Reply:
    content = completion(f"answer {n}")
    return 200, [(b"Content-Length", str(len(content)).encode())], content


async def test_calls_share_a_kept_alive_connection() -> None:
    server = Server(ok)
    async with trio.open_nursery() as nursery:
        url = await serving(nursery, server)
        client = ChatCompletions(url, "sk-test", timeout=5)
        first = await client.post({"model": "m", "messages": []})
        second = await client.post({"model": "m", "messages": [{"role": "user"}]})
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert (first.status, json.loads(first.content)["choices"][0]["message"]["content"]) == (
        200,
        "answer 1",
    )
    assert json.loads(second.content)["choices"][0]["message"]["content"] == "answer 2"
    assert server.connections == 1
    assert server.requests[1] == {"model": "m", "messages": [{"role": "user"}]}
    assert server.headers[0][b"authorization"] == b"Bearer sk-test"
    assert server.headers[0][b"host"].startswith(b"127.0.0.1:")


async def test_a_chunked_answer_and_its_status_and_headers() -> None:
    async def chunked(n: int, _body: dict[str, object]) -> Reply:
        return 429, [(b"Transfer-Encoding", b"chunked"), (b"Retry-After", b"7")], b'{"error": 1}'

    server = Server(chunked)
    async with trio.open_nursery() as nursery:
        client = ChatCompletions(await serving(nursery, server), "k", timeout=5)
        answer = await client.post({})
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert (answer.status, answer.headers["retry-after"], answer.content) == (
        429,
        "7",
        b'{"error": 1}',
    )


async def test_a_connection_closed_by_the_server_meanwhile_is_replaced() -> None:
    server = Server(ok, close_after=1)
    async with trio.open_nursery() as nursery:
        client = ChatCompletions(await serving(nursery, server), "k", timeout=5)
        await client.post({})
        await trio.sleep(0.05)  # the server has closed the kept-alive connection by now
        second = await client.post({})
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert json.loads(second.content)["choices"][0]["message"]["content"] == "answer 2"
    assert server.connections == 2


async def test_a_server_that_never_answers_times_out() -> None:
    async def never(_n: int, _body: dict[str, object]) -> Reply:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with trio.open_nursery() as nursery:
        client = ChatCompletions(await serving(nursery, Server(never)), "k", timeout=0.3)
        with pytest.raises(TimedOut):
            await client.post({})
        assert client._idle == []  # a half-read connection is never reused
        nursery.cancel_scope.cancel()


async def test_a_server_that_is_not_there() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nobody listens on this port now
    client = ChatCompletions(f"http://127.0.0.1:{port}/v1", "k", timeout=5)
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.post({})

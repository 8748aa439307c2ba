"""Fakes for benchmarks: answer every request at once with a canned JSON answer, as an
OpenAI-compatible server (default) or as Meta's Graph API (`--graph`). Raw HTTP/1.1 with
keep-alive on trio, so the fake costs little CPU and the figures measure the suite, not the
fake. Usage: python bench/fake_llm.py PORT [--graph]"""

from __future__ import annotations

import json
import sys

import trio

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": json.dumps(
                        {
                            "reply": "Con gusto. ¿En qué comuna estás?",
                            "lead": {"nombre": None, "estado": "frio"},
                        }
                    ),
                },
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }
).encode()
GRAPH = "--graph" in sys.argv
GRAPH_BODY = '{"messaging_product": "whatsapp", "messages": [{"id": "wamid.bench-%d"}]}'


def http_response(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


RESPONSE = http_response(BODY)
sent = 0


async def handle(stream: trio.SocketStream) -> None:
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(buffer) < length:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            if GRAPH:  # every send gets its own message id, as Meta's do
                global sent
                sent += 1
                await stream.send_all(http_response((GRAPH_BODY % sent).encode()))
            else:
                await stream.send_all(RESPONSE)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


if __name__ == "__main__":
    trio.run(trio.serve_tcp, handle, int(sys.argv[1]))

"""Fakes for benchmarks: answer every request at once with a canned JSON answer, as an
OpenAI-compatible server (default) or as Meta's Graph API (`--graph`). Raw HTTP/1.1 with
keep-alive on trio, so the fake costs little CPU and the figures measure the suite, not the
fake. Usage: python bench/fake_llm.py PORT [--graph] [--delay S] [--rate-limit S]

`--delay 3`: a model that takes 3 s to answer. `--rate-limit 10`: for the first 10 s after
its first request, every request is answered 429 with `Retry-After` (the seconds left of
those 10, rounded up), as a provider's rate limit does. `GET /stats` tells what it did:
answered, refused (429), and the most requests it held at once."""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import partial

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
DELAY = 0.0  # seconds before each answer (--delay)
RATE_LIMIT = 0.0  # seconds of 429s from the first request (--rate-limit)
STATS = {"answered": 0, "refused": 0, "holding": 0, "mostHeld": 0}
first_request_at: float | None = None


def refusal(retry_after: int) -> bytes:
    body = json.dumps(
        {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
    ).encode()
    return (
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        + f"retry-after: {retry_after}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def rate_limited_for() -> float:
    """Seconds left of the rate-limit window (0 once it passed or without --rate-limit)."""
    global first_request_at
    if not RATE_LIMIT:
        return 0.0
    now = trio.current_time()
    if first_request_at is None:
        first_request_at = now
    return max(0.0, first_request_at + RATE_LIMIT - now)


async def model_answer() -> bytes:
    left = rate_limited_for()
    if left > 0:
        STATS["refused"] += 1
        return refusal(math.ceil(left))
    STATS["holding"] += 1
    STATS["mostHeld"] = max(STATS["mostHeld"], STATS["holding"])
    try:
        if DELAY:
            await trio.sleep(DELAY)
    finally:
        STATS["holding"] -= 1
    STATS["answered"] += 1
    return RESPONSE


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
            if head.startswith(b"GET /stats"):
                await stream.send_all(http_response(json.dumps(STATS).encode()))
            elif GRAPH:  # every send gets its own message id, as Meta's do
                global sent
                sent += 1
                await stream.send_all(http_response((GRAPH_BODY % sent).encode()))
            else:
                await stream.send_all(await model_answer())
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


def main() -> None:
    global DELAY, RATE_LIMIT
    parser = argparse.ArgumentParser(description="a fake OpenAI-compatible model (or Graph API)")
    parser.add_argument("port", type=int)
    parser.add_argument("--graph", action="store_true", help="answer as Meta's Graph API")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rate-limit", type=float, default=0.0, help="seconds of 429s")
    args = parser.parse_args()
    DELAY, RATE_LIMIT = args.delay, args.rate_limit
    trio.run(partial(trio.serve_tcp, host="127.0.0.1"), handle, args.port)


if __name__ == "__main__":
    main()

"""Open-loop load on the chat: requests leave on a fixed schedule (RATE per second over N
connections) whatever the server does, and each latency is measured from its scheduled
time, so a slow server cannot hide its queueing (no coordinated omission). Raw sockets
(bench/raw_client.py), so the client's own cost stays out of the figures.

    python bench/open_loop.py URL RATE SECONDS CONNECTIONS  -> JSON on stdout"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raw_client import open_loop, post


def chat_request() -> bytes:
    body = {
        "message": "Hola, necesito una mantención en Ñuñoa",
        "sessionId": f"open-{random.randint(1, 2000)}",
    }
    return post("/api/chat", json.dumps(body, ensure_ascii=False).encode())


if __name__ == "__main__":
    _, url, rate, seconds, connections = sys.argv
    where = urlsplit(url)
    requests = [chat_request() for _ in range(int(float(rate) * float(seconds)))]
    result = trio.run(
        open_loop, where.hostname, where.port, requests, float(rate), int(connections)
    )
    print(json.dumps({"rate": float(rate), **asdict(result)}))

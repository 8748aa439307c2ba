"""Open-loop load: requests leave on a fixed schedule (RATE per second over N connections)
whatever the server does, and each latency is measured from its scheduled time, so a slow
server cannot hide its queueing (no coordinated omission).

    python bench/open_loop.py URL RATE SECONDS CONNECTIONS  -> JSON on stdout"""

from __future__ import annotations

import json
import random
import sys
import time

import httpx
import trio


async def main(url: str, rate: float, seconds: float, connections: int) -> None:
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = trio.current_time() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await trio.sleep_until(scheduled)
            body = {
                "message": "Hola, necesito una mantención en Ñuñoa",
                "sessionId": f"open-{random.randint(1, 2000)}",
            }
            try:
                response = await client.post("/api/chat", json=body)
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((trio.current_time() - scheduled) * 1000)

        async with trio.open_nursery() as nursery:
            for i in range(total):
                nursery.start_soon(one, i)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(
        json.dumps(
            {
                "rate": rate,
                "requests": total,
                "errors": errors,
                "p50_ms": pick(0.50),
                "p99_ms": pick(0.99),
                "max_ms": latencies[-1],
            }
        )
    )


if __name__ == "__main__":
    _, url, rate, seconds, connections = sys.argv
    t = time.perf_counter()
    trio.run(main, url, float(rate), float(seconds), int(connections))

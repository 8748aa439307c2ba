"""Webhook acknowledgements: signed WhatsApp webhooks with distinct message ids against the
suite and, in the same run, a bare quart-trio endpoint that only parses the body.

    python bench/webhook.py [--duration 8] [--rate 200]

Closed loop with wrk at rising concurrency (acks/s, p50, p99, ratio to bare), then an open
loop at --rate requests/s (p99 from each request's scheduled time). The suite answers every
message meanwhile (offline brain; WhatsApp sends go to a raw fake Graph API), so the figures are
acknowledgements under the suite's real load. Needs Debian's `wrk`."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_bench import PY, ROOT, _ms, free_port, process, wait_http

SECRET = "bench-app-secret-0000000000"
CONCURRENCY = (10, 50, 100)


def signed_webhook(i: int) -> tuple[str, bytes]:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "56221234567",
                                "phone_number_id": "1",
                            },
                            "contacts": [
                                {"profile": {"name": "Bench"}, "wa_id": f"569{i % 5000:08d}"}
                            ],
                            "messages": [
                                {
                                    "from": f"569{i % 5000:08d}",
                                    "id": f"wamid.bench-{i}",
                                    "timestamp": str(1764230000 + i),
                                    "type": "text",
                                    "text": {"body": "Hola, ¿hacen mantenciones en Ñuñoa?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest(), raw


def write_requests(path: Path, start: int, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(start, start + count):
            signature, raw = signed_webhook(i)
            out.write(signature + "\t" + raw.decode() + "\n")


def wrk(url: str, connections: int, seconds: int, requests_file: Path) -> dict[str, float]:
    env = {**os.environ, "WEBHOOK_REQUESTS": str(requests_file), "WRK_THREADS": "2"}
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            "bench/webhook.lua",
            url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import re

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": int(bad.group(1)) if bad else 0}


async def open_loop(url: str, rate: float, seconds: float, first_id: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = trio.current_time() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            signature, raw = signed_webhook(first_id + i)
            await trio.sleep_until(scheduled)
            try:
                r = await client.post(
                    "/api/whatsapp/webhook",
                    content=raw,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
                )
                errors += r.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append((trio.current_time() - scheduled) * 1000)

        async with trio.open_nursery() as nursery:
            for i in range(int(rate * seconds)):
                nursery.start_soon(one, i)
    latencies.sort()
    return {
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": errors,
    }


def wait_drained(url: str, timeout: float = 300) -> None:
    """Until the suite has answered every stored message (the closed loops leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health/detailed", timeout=10).json()
        if health["channels"]["whatsapp"]["inboundPending"] == 0:
            return
        time.sleep(0.5)
    raise SystemExit("the suite did not drain its backlog")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rates", default="100,200", help="open-loop requests/s, comma-separated")
    args = parser.parse_args()
    rows: list[tuple[str, int, dict[str, float]]] = []
    opens: list[tuple[str, float, dict[str, float]]] = []
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        write_requests(requests_file, 0, 60_000)
        port = free_port()
        with process([PY, "bench/bare_app.py", str(port)]):
            wait_http(f"http://127.0.0.1:{port}/")
            for c in CONCURRENCY:
                rows.append(
                    (
                        "bare quart-trio endpoint",
                        c,
                        wrk(f"http://127.0.0.1:{port}", c, args.duration, requests_file),
                    )
                )
            for k, rate in enumerate(rates):
                opens.append(
                    (
                        "bare quart-trio endpoint",
                        rate,
                        trio.run(
                            open_loop,
                            f"http://127.0.0.1:{port}",
                            rate,
                            args.duration,
                            1_000_000 * (k + 1),
                        ),
                    )
                )
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "WHATSAPP"))}
        env.update(
            PORT=str(port),
            DATABASE_PATH=str(Path(tmp) / "leads.db"),
            LOG_DIR=str(Path(tmp) / "logs"),
            LOG_LEVEL="ERROR",
            META_APP_SECRET=SECRET,
        )
        with process([PY, "-m", "supervisor.cli", "run"], env):
            wait_http(f"http://127.0.0.1:{port}/health/ready")
            for n, c in enumerate(CONCURRENCY):
                # Fresh ids for every run: duplicates would be cheaper to acknowledge.
                write_requests(requests_file, 100_000 * (n + 1), 60_000)
                rows.append(
                    (
                        "suite (stores, then answers)",
                        c,
                        wrk(f"http://127.0.0.1:{port}", c, args.duration, requests_file),
                    )
                )
            for k, rate in enumerate(rates):
                opens.append(
                    (
                        "suite (stores, then answers)",
                        rate,
                        trio.run(
                            open_loop,
                            f"http://127.0.0.1:{port}",
                            rate,
                            args.duration,
                            5_000_000 * (k + 1),
                        ),
                    )
                )
                time.sleep(args.duration)  # let the suite drain before the next rate
    bare = {c: r for name, c, r in rows if name.startswith("bare")}
    print(
        f"\nSigned WhatsApp webhooks, distinct ids, {args.duration} s a run, "
        f"{os.cpu_count()} cores\n"
    )
    print(f"{'target':32} {'conns':>5} {'acks/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    for name, c, r in rows:
        print(
            f"{name:32} {c:5d} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} "
            f"{r['rps'] / bare[c]['rps']:6.2f}"
        )
    print("\nOpen loop (latency from the scheduled send time)\n")
    for name, rate, o in opens:
        print(
            f"{name:32} {rate:5.0f} req/s  p50 {o['p50']:7.1f} ms  p99 {o['p99']:8.1f} ms"
            f"  errors {o['errors']:.0f}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "webhook.json").write_text(
        json.dumps(
            {
                "closed_loop": [{"target": n, "connections": c, **r} for n, c, r in rows],
                "open_loop": [{"target": n, "rate": r, **o} for n, r, o in opens],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

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
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_bench import PY, ROOT, free_port, process, run_wrk, wait_http
from raw_client import open_loop, post

SECRET = "bench-app-secret-0000000000"
BARE = "bare quart-trio endpoint"
SUITE = "suite (stores, then answers)"
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
    return run_wrk("bench/webhook.lua", url, connections, seconds, env)


async def webhook_open_loop(
    url: str, rate: float, seconds: float, first_id: int
) -> dict[str, float]:
    where = urlsplit(url)
    requests = []
    for i in range(int(rate * seconds)):
        signature, raw = signed_webhook(first_id + i)
        requests.append(post("/api/whatsapp/webhook", raw, {"X-Hub-Signature-256": signature}))
    result = await open_loop(str(where.hostname), int(where.port or 80), requests, rate)
    return {"p50": result.p50_ms, "p99": result.p99_ms, "errors": result.errors}


def wait_drained(url: str, timeout: float = 300) -> None:
    """Until the suite has answered every stored message (the closed loops leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health/detailed", timeout=10).json()
        if health["channels"]["whatsapp"]["inboundPending"] == 0:
            return
        time.sleep(0.5)
    raise SystemExit("the suite did not drain its backlog")


def measure(
    name: str,
    url: str,
    args: argparse.Namespace,
    requests_file: Path,
    first_id: int,
    rows: list[tuple[str, int, dict[str, float]]],
    opens: list[tuple[str, float, dict[str, float]]],
) -> None:
    for n, c in enumerate(CONCURRENCY):
        # Fresh ids for every run: duplicates would be cheaper to acknowledge.
        write_requests(requests_file, first_id + 100_000 * n, 60_000)
        rows.append((name, c, wrk(url, c, args.duration, requests_file)))
    for k, rate in enumerate(args.rates):
        if name == SUITE:
            wait_drained(url)
        opens.append(
            (
                name,
                rate,
                trio.run(
                    webhook_open_loop, url, rate, args.duration, first_id + 1_000_000 * (k + 1)
                ),
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument(
        "--rates",
        default="100,200",
        type=lambda v: [float(r) for r in v.split(",")],
        help="open-loop requests/s, comma-separated",
    )
    args = parser.parse_args()
    rows: list[tuple[str, int, dict[str, float]]] = []
    opens: list[tuple[str, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        port = free_port()
        with process([PY, "bench/bare_app.py", str(port)]):
            wait_http(f"http://127.0.0.1:{port}/")
            measure(BARE, f"http://127.0.0.1:{port}", args, requests_file, 0, rows, opens)
        port, graph_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "WHATSAPP"))}
        env.update(
            PORT=str(port),
            DATABASE_PATH=str(Path(tmp) / "leads.db"),
            LOG_DIR=str(Path(tmp) / "logs"),
            LOG_LEVEL="WARNING",
            META_APP_SECRET=SECRET,
            WHATSAPP_ACCESS_TOKEN="bench-token-0000000000",
            WHATSAPP_PHONE_NUMBER_ID="106540352242922",
            META_GRAPH_URL=f"http://127.0.0.1:{graph_port}/v21.0",
        )
        with (
            process([PY, "bench/fake_llm.py", str(graph_port), "--graph"]),
            process([PY, "-m", "supervisor.cli", "run"], env),
        ):
            wait_http(f"http://127.0.0.1:{port}/health/ready")
            measure(SUITE, f"http://127.0.0.1:{port}", args, requests_file, 10_000_000, rows, opens)
    bare = {c: r for name, c, r in rows if name == BARE}
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

"""Webhook acknowledgements: signed WhatsApp webhooks with distinct message ids against the
suite and, in the same run, a bare quart-trio endpoint that only parses the body.

    python bench/webhook.py [--duration 8] [--rounds 3] [--rates 100,200]

Closed loop with wrk at rising concurrency (acks/s, p50, p99, ratio to bare), then open
loops at --rates requests/s (p99 from each request's scheduled time, raw-socket client),
in rounds that interleave the two targets; medians are reported. The suite answers every
message meanwhile (offline brain; WhatsApp sends go to a raw fake Graph API), so the figures are
acknowledgements under the suite's real load. Needs Debian's `wrk`."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
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
    """Until the suite has answered and sent everything (the closed loops leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health/detailed", timeout=10).json()
        whatsapp = health["channels"]["whatsapp"]
        if whatsapp["inboundPending"] == 0 and whatsapp["outboxPending"] == 0:
            return
        time.sleep(0.5)
    raise SystemExit("the suite did not drain its backlog")


class Ids:
    """Fresh message ids for every run: duplicates would be cheaper to acknowledge."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument(
        "--rates",
        default="100,200",
        type=lambda v: [float(r) for r in v.split(",")],
        help="open-loop requests/s, comma-separated",
    )
    args = parser.parse_args()
    closed: dict[tuple[str, int], list[dict[str, float]]] = {}
    opened: dict[tuple[str, float], list[dict[str, float]]] = {}
    ids = Ids()
    with tempfile.TemporaryDirectory() as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        bare_port, port, graph_port = free_port(), free_port(), free_port()
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
        targets = {BARE: f"http://127.0.0.1:{bare_port}", SUITE: f"http://127.0.0.1:{port}"}
        with (
            process([PY, "bench/bare_app.py", str(bare_port)]),
            process([PY, "bench/fake_llm.py", str(graph_port), "--graph"]),
            process([PY, "-m", "supervisor.cli", "run"], env),
        ):
            wait_http(f"{targets[BARE]}/")
            wait_http(f"{targets[SUITE]}/health/ready")
            # Rounds interleave the two targets, so that this machine's drift (±30 % between
            # minutes) falls on both; the suite drains its backlog before anyone runs again.
            for _round in range(args.rounds):
                for name, url in targets.items():
                    for c in CONCURRENCY:
                        write_requests(requests_file, ids.take(100_000), 60_000)
                        result = wrk(url, c, args.duration, requests_file)
                        closed.setdefault((name, c), []).append(result)
                        if name == SUITE:
                            wait_drained(url)
                    for rate in args.rates:
                        first = ids.take(100_000)
                        result = trio.run(webhook_open_loop, url, rate, args.duration, first)
                        opened.setdefault((name, rate), []).append(result)
                        if name == SUITE:
                            wait_drained(url)
    report(args, closed, opened)


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(
    args: argparse.Namespace,
    closed: dict[tuple[str, int], list[dict[str, float]]],
    opened: dict[tuple[str, float], list[dict[str, float]]],
) -> None:
    print(
        f"\nSigned WhatsApp webhooks, distinct ids, {args.duration} s a run, "
        f"{args.rounds} interleaved rounds (medians), {os.cpu_count()} cores\n"
    )
    print(
        f"{'target':32} {'conns':>5} {'acks/s':>8} {'range':>11} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'ratio':>6}"
    )
    rows = []
    for (name, c), runs in closed.items():
        rps = [r["rps"] for r in runs]
        bare = median([r["rps"] for r in closed[(BARE, c)]])
        row = {
            "target": name,
            "connections": c,
            "rps": median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50": median([r["p50"] for r in runs]),
            "p99": median([r["p99"] for r in runs]),
            "ratio": median(rps) / bare,
        }
        rows.append(row)
        print(
            f"{name:32} {c:5d} {row['rps']:8.0f} {min(rps):5.0f}-{max(rps):<5.0f}"
            f" {row['p50']:8.1f} {row['p99']:8.1f} {row['ratio']:6.2f}"
        )
    print("\nOpen loop (latency from the scheduled send time; medians, worst p99)\n")
    opens = []
    for (name, rate), runs in opened.items():
        row = {
            "target": name,
            "rate": rate,
            "p50": median([r["p50"] for r in runs]),
            "p99": median([r["p99"] for r in runs]),
            "p99_worst": max(r["p99"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        opens.append(row)
        print(
            f"{name:32} {rate:5.0f} req/s  p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms"
            f"  (worst {row['p99_worst']:.1f})  errors {row['errors']:.0f}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "webhook.json").write_text(
        json.dumps({"closed_loop": rows, "open_loop": opens}, indent=2)
    )


if __name__ == "__main__":
    main()

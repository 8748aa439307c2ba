"""Chat throughput and latency of the suite against a bare quart-trio endpoint, same run,
same load (wrk, N concurrent connections, distinct sessions).

    python bench/chat_bench.py [--connections 20] [--duration 10]

Needs Debian's `wrk`. Prints req/s, p50 and p99 for: the bare endpoint; the suite with the
offline brain; the suite with an OpenAI-compatible fake that answers instantly (the LLM path
without the LLM's own time). The ratios compare each to the bare endpoint."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class OpenLoop:
    name: str
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Figures:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error still means it is up
                return
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def run_wrk(
    script: str, url: str, connections: int, seconds: int, env: dict[str, str] | None = None
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, and non-2xx answers."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": int(bad.group(1)) if bad else 0}


def wrk(name: str, url: str, connections: int, duration: int) -> Figures:
    run_wrk("bench/chat.lua", url, connections, 2)  # warm up: imports, caches, sessions
    r = run_wrk("bench/chat.lua", url, connections, duration)
    return Figures(name, r["rps"], r["p50"], r["p99"], int(r["errors"]))


def open_loop(name: str, url: str, rate: float, connections: int, seconds: int) -> OpenLoop:
    out = subprocess.run(
        [PY, "bench/open_loop.py", url, str(rate), str(seconds), str(connections)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    return OpenLoop(name, rate, data["p50_ms"], data["p99_ms"], data["errors"])


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def suite_env(workdir: Path, port: int, llm_port: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(
        PORT=str(port),
        DATABASE_PATH=str(workdir / "leads.db"),
        LOG_DIR=str(workdir / "logs"),
        LOG_LEVEL="WARNING",
    )
    if llm_port is not None:
        env.update(
            OPENAI_API_KEY="sk-bench-not-a-real-key-000000",
            OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        )
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--rates",
        default="50,100",
        help="requests/s for the open-loop latency runs, comma-separated",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    results: list[Figures] = []
    latency: list[OpenLoop] = []
    c, d = args.connections, args.duration
    rates = [float(r) for r in args.rates.split(",")]

    port = free_port()
    with process([PY, "bench/bare_app.py", str(port)]):
        wait_http(f"http://127.0.0.1:{port}/")
        results.append(wrk("bare quart-trio endpoint", f"http://127.0.0.1:{port}", c, d))
        latency += [
            open_loop("bare quart-trio endpoint", f"http://127.0.0.1:{port}", r, c, d)
            for r in rates
        ]

    for label, with_llm in (
        ("suite, offline brain", False),
        ("suite, OpenAI-compatible fake (instant)", True),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            port, llm_port = free_port(), free_port()
            env = suite_env(Path(tmp), port, llm_port if with_llm else None)
            with (
                process([PY, "bench/fake_llm.py", str(llm_port)]),
                process([PY, "-m", "supervisor.cli", "run"], env),
            ):
                wait_http(f"http://127.0.0.1:{port}/health/ready")
                results.append(wrk(label, f"http://127.0.0.1:{port}", c, d))
                latency += [open_loop(label, f"http://127.0.0.1:{port}", r, c, d) for r in rates]

    bare = results[0]
    print(f"\n{c} concurrent connections, {d} s each, {os.cpu_count()} cores\n")
    print(f"{'target':42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'non-2xx':>8}")
    for r in results:
        ratio = r.requests_per_second / bare.requests_per_second
        print(
            f"{r.name:42} {r.requests_per_second:8.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} "
            f"{ratio:6.2f} {r.errors:8d}"
        )
    print(f"\nOpen loop on {c} connections, {d} s a rate (latency from the scheduled send time)\n")
    print(
        f"{'target':42} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99 overhead':>13} {'errors':>7}"
    )
    bare_p99 = {o.rate: o.p99_ms for o in latency if o.name == bare.name}
    for o in latency:
        print(
            f"{o.name:42} {o.rate:6.0f} {o.p50_ms:8.1f} {o.p99_ms:8.1f} "
            f"{o.p99_ms - bare_p99[o.rate]:13.1f} {o.errors:7d}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "chat_bench.json").write_text(
        json.dumps(
            {
                "closed_loop": [asdict(r) for r in results],
                "open_loop": [asdict(o) for o in latency],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Bursts: N new visitors at once against the suite and a slow model (issue 13).

    .venv/bin/python bench/burst.py                  # the issue's two scenarios, in turn
    .venv/bin/python bench/burst.py --visitors 2000 --delay 3 [--rate-limit 10]
        [--turn-timeout 30] [--max-concurrency 256]

`ia-comercial run` runs as a subprocess on SQLite in a temporary folder against
bench/fake_llm.py (a model that answers in --delay seconds; with --rate-limit S, 429 with
Retry-After for its first S seconds), both on 127.0.0.1. Each visitor is a new sessionId
that POSTs /api/chat once, over a connection of its own; all start at the same moment (raw
trio sockets: a client that costs little, so the figures are the suite's). Reported:
answered by the model, with the fallback, other answers (a 503) and connection errors;
latency p50/p99/max from the common start; the suite's peak RSS (psutil, every 100 ms);
the model gate's limit over time (/health/detailed); what the fake model saw.

The turn's deadline is OPENAI_TIMEOUT (--turn-timeout): a visitor waits for the model up to
it, then gets the fallback."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raw_client import post

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SECONDS = 1.0
MIB = 1024 * 1024
RSS_EVERY = 0.1 * SECONDS
GATE_EVERY = 1 * SECONDS
STARTUP_TIMEOUT = 30 * SECONDS
CLIENT_SLACK = 30 * SECONDS  # past the suite's own chat timeout, a visitor gives up
MODEL_REPLY = "Con gusto. ¿En qué comuna estás?"  # bench/fake_llm.py's
FALLBACK_START = "Disculpa, tuve un problema"
NUMBER = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class Scenario:
    name: str
    visitors: int
    delay: float
    rate_limit: float
    turn_timeout: float
    max_concurrency: int | None


@dataclass
class Figures:
    scenario: Scenario
    outcomes: dict[str, int]
    p50_s: float
    p99_s: float
    max_s: float
    connect_p99_s: float
    connect_max_s: float
    rss_before_mib: float
    peak_rss_mib: float
    suite_cpu_s: float  # user + system, over the burst
    model: dict[str, int]
    gate: list[dict[str, float]] = field(default_factory=list)
    log: dict[str, int] = field(default_factory=dict)  # the suite's warnings and errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_open_files() -> None:
    """This process holds a connection per visitor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def process(args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    with open(workdir / f"{Path(args[1]).stem}.log", "ab") as log:
        proc = subprocess.Popen(
            args, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            yield proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def suite_env(workdir: Path, port: int, llm_port: int, scenario: Scenario) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LLM_"))}
    env.update(
        PORT=str(port),
        DATABASE_PATH=str(workdir / "leads.db"),
        LOG_DIR=str(workdir / "logs"),
        LOG_LEVEL="WARNING",
        BACKUP_TIME="off",
        DAILY_SUMMARY_AT="off",
        BUSINESS_CONFIG=str(ROOT / "config" / "business.json"),
        SYSTEM_PROMPT_PATH=str(ROOT / "prompts" / "systemPrompt.txt"),
        OPENAI_API_KEY="sk-bench-not-a-real-key-000000",
        OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        OPENAI_TIMEOUT=f"{scenario.turn_timeout:g}",
    )
    if scenario.max_concurrency is not None:
        env["LLM_MAX_CONCURRENCY"] = str(scenario.max_concurrency)
    return env


async def wait_ready(url: str) -> None:
    with trio.fail_after(STARTUP_TIMEOUT):
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


def outcome_of(raw: bytes) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return "connection error: closed unanswered"
    status = int(head.split()[1])
    if status != 200:
        return f"HTTP {status}"
    try:
        reply = json.loads(body)["data"]["respuesta"]
    except (ValueError, KeyError, TypeError):
        return "unreadable answer"
    if reply == MODEL_REPLY:
        return "model"
    return "fallback" if reply.startswith(FALLBACK_START) else "other reply"


@dataclass(frozen=True)
class Visit:
    outcome: str
    connected: float  # seconds from the start (inf: never)
    seconds: float  # to the whole answer, or to the error


async def visit(port: int, request: bytes, go: trio.Event, deadline: float) -> Visit:
    await go.wait()
    start = trio.current_time()
    connected = float("inf")
    raw = bytearray()
    try:
        with trio.fail_at(start + deadline):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            connected = trio.current_time() - start
            async with stream:
                await stream.send_all(request)
                # The answer is whole at Content-Length, as a browser reads it.
                while (missing := _missing(raw)) != 0:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        if missing is None:
                            break
                        raise trio.BrokenResourceError("closed mid-answer")
                    raw += chunk
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        stage = "connecting" if connected == float("inf") else "answer"
        if raw:
            stage += f", got {bytes(raw[:12]).decode(errors='replace')!r}…"
        return Visit(
            f"connection error ({stage}): {type(exc).__name__}",
            connected,
            trio.current_time() - start,
        )
    return Visit(outcome_of(bytes(raw)), connected, trio.current_time() - start)


def _missing(raw: bytearray) -> int | None:
    """Bytes of the answer still to come; None until its head says how many."""
    head, found, body = bytes(raw).partition(b"\r\n\r\n")
    if not found:
        return None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return max(0, int(value) - len(body))
    return None  # read to the end


async def sample_rss(pid: int, peak: list[float], done: trio.Event) -> None:
    suite = psutil.Process(pid)
    while not done.is_set():
        peak[0] = max(peak[0], suite.memory_info().rss / MIB)
        await trio.sleep(RSS_EVERY)


async def sample_gate(url: str, timeline: list[dict[str, float]], done: trio.Event) -> None:
    start = trio.current_time()
    async with httpx.AsyncClient(timeout=60) as client:
        while not done.is_set():
            try:
                gate = (await client.get(url)).json()["llm"]["gate"]
            except (httpx.HTTPError, ValueError, KeyError):
                gate = None
            if gate is not None:
                timeline.append(
                    {
                        "at": round(trio.current_time() - start, 1),
                        "limit": gate["limit"],
                        "inFlight": gate["inFlight"],
                        "waiting": gate["waiting"],
                        "paused": gate["pausedForSeconds"],
                    }
                )
            await trio.sleep(GATE_EVERY)


async def burst(scenario: Scenario) -> Figures:
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        workdir = Path(tmp)
        port, llm_port = free_port(), free_port()
        fake = [PY, str(ROOT / "bench" / "fake_llm.py"), str(llm_port)]
        fake += ["--delay", f"{scenario.delay:g}", "--rate-limit", f"{scenario.rate_limit:g}"]
        env = suite_env(workdir, port, llm_port, scenario)
        with (
            process(fake, workdir),
            process([PY, "-m", "supervisor.cli", "run"], workdir, env) as pid,
        ):
            base = f"http://127.0.0.1:{port}"
            await wait_ready(f"{base}/health/ready")
            figures = await _measure(scenario, port, llm_port, pid)
        figures.log = log_summary(workdir / "logs" / "combined.log")
        return figures


def log_summary(path: Path) -> dict[str, int]:
    """The suite's warnings and errors, counted by message (numbers left out)."""
    seen: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            message = NUMBER.sub("N", str(entry.get("message")))[:90]
            seen[f"{entry['level']}: {message}"] += 1
    return dict(seen.most_common(8))


async def _measure(scenario: Scenario, port: int, llm_port: int, pid: int) -> Figures:
    base = f"http://127.0.0.1:{port}"
    suite = psutil.Process(pid)
    rss_before = suite.memory_info().rss / MIB
    cpu_before = sum(suite.cpu_times()[:2])
    peak = [rss_before]
    timeline: list[dict[str, float]] = []
    results: list[Visit] = []
    give_up = scenario.turn_timeout + 5 * SECONDS + CLIENT_SLACK
    go, done = trio.Event(), trio.Event()

    async def one(n: int) -> None:
        body = {"message": "Hola, necesito una mantención del aire", "sessionId": f"burst-{n}"}
        request = post("/api/chat", json.dumps(body).encode(), {"Connection": "close"})
        results.append(await visit(port, request, go, give_up))

    async with trio.open_nursery() as samplers:
        samplers.start_soon(sample_rss, pid, peak, done)
        samplers.start_soon(sample_gate, f"{base}/health/detailed", timeline, done)
        async with trio.open_nursery() as visitors:
            for n in range(scenario.visitors):
                visitors.start_soon(one, n)
            await trio.sleep(0.5)  # every visitor task waiting on `go`
            go.set()
        await trio.sleep(GATE_EVERY)  # the gate after the burst
        done.set()
    cpu = sum(suite.cpu_times()[:2]) - cpu_before
    async with httpx.AsyncClient() as client:
        model = (await client.get(f"http://127.0.0.1:{llm_port}/stats")).json()
    latencies = sorted(v.seconds for v in results)
    connects = sorted(v.connected for v in results)

    def pick(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    return Figures(
        scenario,
        dict(Counter(v.outcome for v in results).most_common()),
        pick(latencies, 0.50),
        pick(latencies, 0.99),
        round(latencies[-1], 2),
        pick(connects, 0.99),
        round(connects[-1], 2),
        round(rss_before, 1),
        round(peak[0], 1),
        round(cpu, 1),
        model,
        timeline,
    )


def report(figures: Figures) -> None:
    s = figures.scenario
    limit = f"429 + Retry-After for its first {s.rate_limit:g} s" if s.rate_limit else "no 429"
    ceiling = s.max_concurrency or "default"
    print(
        f"\n== {s.name}: {s.visitors} visitors at once, a {s.delay:g} s model ({limit}),"
        f" turn deadline {s.turn_timeout:g} s, LLM_MAX_CONCURRENCY {ceiling}, {os.cpu_count()}"
        " cores"
    )
    for outcome, count in figures.outcomes.items():
        print(f"  {outcome:38} {count:6d}")
    print(
        f"  latency from the start: p50 {figures.p50_s} s, p99 {figures.p99_s} s,"
        f" max {figures.max_s} s (connected: p99 {figures.connect_p99_s} s,"
        f" max {figures.connect_max_s} s)"
    )
    print(
        f"  suite RSS: {figures.rss_before_mib} MiB before, peak {figures.peak_rss_mib} MiB;"
        f" CPU {figures.suite_cpu_s} s ({1000 * figures.suite_cpu_s / s.visitors:.1f} ms a visitor)"
    )
    m = figures.model
    print(
        f"  the model: {m['answered']} answered, {m['refused']} refused (429),"
        f" at most {m['mostHeld']} at once"
    )
    for message, count in figures.log.items():
        print(f"  suite log: {count:6d} × {message}")
    print("  the gate (t s: limit / in flight / waiting / paused s):")
    line = [
        f"{g['at']:g}: {g['limit']}/{g['inFlight']}/{g['waiting']}"
        + (f"/{g['paused']:g}" if g["paused"] else "")
        for g in figures.gate
    ]
    for i in range(0, len(line), 6):
        print("    " + "   ".join(line[i : i + 6]))


SCENARIOS = {
    # 2,000 turns cost the suite ~20 s of CPU on one core, and the gate needs ~7 rounds of
    # 3 s calls to reach its ceiling: the default 30 s deadline is too short for the last.
    "burst": Scenario("burst", 2000, 3.0, 0.0, 60.0, None),
    # The deadline leaves room for the 10 s of 429s and the queue behind them.
    "rate-limit": Scenario("rate-limit", 300, 3.0, 10.0, 60.0, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--visitors", type=int)
    parser.add_argument("--delay", type=float, help="the model's seconds per answer")
    parser.add_argument("--rate-limit", type=float, help="seconds of 429 + Retry-After")
    parser.add_argument("--turn-timeout", type=float, help="OPENAI_TIMEOUT, seconds")
    parser.add_argument("--max-concurrency", type=int, help="LLM_MAX_CONCURRENCY")
    args = parser.parse_args()
    raise_open_files()
    names = list(SCENARIOS) if args.scenario == "both" else [args.scenario]
    every: list[Figures] = []
    for name in names:
        base = SCENARIOS[name]
        scenario = Scenario(
            name,
            args.visitors or base.visitors,
            base.delay if args.delay is None else args.delay,
            base.rate_limit if args.rate_limit is None else args.rate_limit,
            args.turn_timeout or base.turn_timeout,
            args.max_concurrency or base.max_concurrency,
        )
        figures = trio.run(burst, scenario)
        report(figures)
        every.append(figures)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "burst.json").write_text(json.dumps([asdict(f) for f in every], indent=2))


if __name__ == "__main__":
    main()

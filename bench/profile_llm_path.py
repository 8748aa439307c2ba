"""Where the suite's LLM path spends its CPU: the suite on core 0 against the instant fake
model, a warm-up, then py-spy attached while a closed loop of `turns` chat turns runs over
`connections` keep-alive connections (raw sockets, bench/raw_client.py). Prints the
functions with the most self and cumulative samples (py-spy leaves out threads it sees
waiting) and each one's share of the CPU time the suite used a turn (psutil).

Used by `python bench/vs_original.py --profile`; needs py-spy in the venv
(`.venv/bin/pip install py-spy`)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_bench import PY, ROOT, free_port, suite_env, wait_http
from pinning import SERVER_CORE, pinned
from raw_client import Connection, post

WARM_UP_TURNS = 1000
SAMPLES_PER_SECOND = 250
ATTACH_WAIT = 2.0  # seconds: py-spy reads the interpreter's layout before it samples
SESSIONS = 2000
# trio's idle worker threads wait in a C lock call that py-spy samples as running.
IDLE_FRAMES = {"WorkerThread._work (trio/_core/_thread_cache.py)"}
TRUNK_SHARE = 0.9  # frames in this share of all samples are the start-up trunk, not a cost


def chat_turn(prefix: str) -> bytes:
    """A turn of one of SESSIONS people, as bench/vs_original.lua sends."""
    session = f"{prefix}-{random.randint(1, SESSIONS)}"
    body = {"message": "Hola, necesito una mantención en Ñuñoa", "sessionId": session}
    return post("/api/chat", json.dumps(body, ensure_ascii=False).encode())


async def closed_loop(port: int, turns: int, connections: int, prefix: str) -> int:
    """`turns` chat turns, each connection sending its next as soon as it has an answer;
    the number of answers that were not 200."""
    left = turns
    errors = 0

    async def one_connection() -> None:
        nonlocal left, errors
        connection = Connection(await trio.open_tcp_stream("127.0.0.1", port))
        async with connection.stream:
            while left > 0:
                left -= 1
                errors += await connection.exchange(chat_turn(prefix)) != 200

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one_connection)
    return errors


def py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    if not found.exists():
        raise SystemExit("needs py-spy: .venv/bin/pip install py-spy")
    return str(found)


def spy_options(stacks: Path) -> list[str]:
    """Collapsed stacks by function (no line numbers), on-CPU samples only."""
    rate = str(SAMPLES_PER_SECOND)
    return ["--format", "raw", "--nolineno", "--rate", rate, "--output", str(stacks)]


def profile(turns: int, connections: int, top: int, offline: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="profile-llm-") as tmp:
        port, llm_port = free_port(), free_port()
        stacks = Path(tmp) / "stacks.txt"
        fake = [PY, "bench/fake_llm_full_lead.py", str(llm_port)]
        suite = [PY, "-m", "supervisor.cli", "run"]
        with (
            pinned(fake, dict(os.environ), ROOT),
            pinned(
                suite, suite_env(Path(tmp), port, None if offline else llm_port), ROOT, SERVER_CORE
            ) as server,
        ):
            wait_http(f"http://127.0.0.1:{port}/health/ready")
            trio.run(closed_loop, port, WARM_UP_TURNS, connections, "warm")
            spy = subprocess.Popen(
                [py_spy(), "record", "--pid", str(server.pid), *spy_options(stacks)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(ATTACH_WAIT)
            suite_cpu = psutil.Process(server.pid)
            cpu_before, started = sum(suite_cpu.cpu_times()[:2]), time.monotonic()
            errors = trio.run(closed_loop, port, turns, connections, "profiled")
            elapsed = time.monotonic() - started
            cpu = sum(suite_cpu.cpu_times()[:2]) - cpu_before
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            _, complaint = spy.communicate(timeout=60)
        if not stacks.exists():
            raise SystemExit(f"py-spy wrote nothing: {complaint.decode()}")
        print(
            f"\n{'offline brain' if offline else 'LLM path'}: {turns} chat turns"
            f" over {connections} connections in {elapsed:.1f} s"
            f" ({turns / elapsed:.0f} req/s under py-spy, {errors} not 200);"
            f" the suite used {cpu / turns * 1000:.2f} ms of CPU a turn"
        )
        report(read_stacks(stacks), cpu / turns * 1000, top)


@dataclass(frozen=True)
class Samples:
    own: Counter[str]  # samples with the function at the top of the stack
    cumulative: Counter[str]  # samples with the function anywhere in the stack
    total: int
    idle: int


def read_stacks(path: Path) -> Samples:
    """Self and cumulative samples by function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if frames[-1] in IDLE_FRAMES:
            idle += int(count)
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            cumulative[frame] += int(count)
    return Samples(own, cumulative, total, idle)


def package(frame: str) -> str:
    """The package a py-spy frame `name (path)` belongs to: its path's first folder."""
    path = frame.rpartition(" (")[2].rstrip(")")
    return path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")


def report(samples: Samples, cpu_ms_per_turn: float, top: int) -> None:
    """Shares of the on-CPU samples, and each share of the CPU a turn cost."""
    print(
        f"{samples.total} samples at {SAMPLES_PER_SECOND}/s"
        f" ({samples.idle} more in idle worker threads, left out)\n"
    )
    trunk = {f for f, n in samples.cumulative.items() if n >= TRUNK_SHARE * samples.total}
    cumulative = Counter({f: n for f, n in samples.cumulative.items() if f not in trunk})
    by_package = Counter[str]()
    for frame, n in samples.own.items():
        by_package[package(frame)] += n
    for title, what, counts in (
        ("self time", "function", samples.own),
        ("cumulative time", "function", cumulative),
        ("self time, by package", "package", by_package),
    ):
        print(f"Top {top} by {title}\n\n| share | ms/turn | {what} |\n|---|---|---|")
        for frame, n in counts.most_common(top):
            share = n / samples.total
            print(f"| {share:6.1%} | {share * cpu_ms_per_turn:.3f} | `{frame}` |")
        print()

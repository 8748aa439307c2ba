"""Chat throughput side by side with the original Node.js system (issue 13).

    python bench/vs_original.py --original PATH [--connections 20] [--duration 10] [--rounds 3]
    python bench/vs_original.py --profile [--turns 5000]

PATH is a checkout of `ignacioargenis-dev/ia-comercial` after `npm ci`; it is run with
`node`, never copied. One run starts the original, the suite on its LLM path and the suite
with the offline brain, the two LLM paths pointed at one instant OpenAI-compatible fake
(`bench/fake_llm_full_lead.py`, an answer both accept). Each server is pinned to core 0;
this script, wrk and the fake to core 1. Rounds interleave the three targets (a 2 s warm-up,
then a closed loop of wrk with distinct sessions) and medians are reported, with each
server's RSS and the share of core 0 that other processes took meanwhile. Needs `wrk`.

`--profile` runs the suite's LLM path under py-spy for a fixed number of chat turns and
prints the functions with the most self and cumulative CPU (bench/profile_llm_path.py)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_bench import PY, ROOT, _ms, free_port, suite_env, wait_http
from fake_llm_full_lead import REPLY
from pinning import LOAD_CORE, SERVER_CORE, pinned

ORIGINAL = "original (Node.js)"
OURS_LLM = "ours, LLM path"
OURS_OFFLINE = "ours, offline brain"
SECONDS = 1.0
WARM_UP = 2 * SECONDS
BUSY_LOAD = 1.0  # 1-minute load average above which the figures are flagged
QUIET_POLL = 30 * SECONDS
BENCH_KEY = "sk-bench-not-a-real-key-000000"
MIB = 1024 * 1024
LUA = ("-s", "bench/vs_original.lua")
SOCKET_ERRORS = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
# The targets, as ratios to the original's requests per second.
LLM_TARGET, OFFLINE_TARGET = 1.0, 1.5


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float
    others_on_server_core: float  # share of core 0 used by anything but the measured server


def original_env(original: Path, workdir: Path, port: int, llm_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "NODE_"))}
    env.update(
        PORT=str(port),
        DATABASE_PATH=str(workdir / "original.db"),
        OPENAI_API_KEY=BENCH_KEY,
        OPENAI_BASE_URL=llm_url,  # read by the openai package it uses (4.x)
        NODE_ENV="production",
        LOG_LEVEL="warn",  # as the suite's WARNING: no per-request info lines
        ENABLE_FOLLOW_UPS="false",  # its cron would try e-mail and WhatsApp
    )
    return env


@contextmanager
def servers(original: Path, workdir: Path, llm_port: int) -> Iterator[list[Server]]:
    """The three targets, up and answering, on the server core."""
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    ports = {name: free_port() for name in (ORIGINAL, OURS_LLM, OURS_OFFLINE)}
    node = ["node", "--require", str(ROOT / "bench" / "loopback_only.cjs"), "server.js"]
    suite = [PY, "-m", "supervisor.cli", "run"]
    specs = {
        ORIGINAL: (node, original_env(original, workdir, ports[ORIGINAL], llm_url), original),
        OURS_LLM: (suite, suite_env(workdir / "llm", ports[OURS_LLM], llm_port), ROOT),
        OURS_OFFLINE: (suite, suite_env(workdir / "offline", ports[OURS_OFFLINE], None), ROOT),
    }
    with ExitStack() as stack:
        up: list[Server] = []
        for name, (args, env, cwd) in specs.items():
            log = workdir / f"server-{len(up)}.log"
            proc = stack.enter_context(pinned(args, env, cwd, SERVER_CORE, log))
            url = f"http://127.0.0.1:{ports[name]}"
            try:
                wait_http(f"{url}/health/live", timeout=60)
            except SystemExit:
                tail = log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} did not come up; its output ends:\n{tail}") from None
            check_answer(name, url)
            up.append(Server(name, url, proc.pid))
        yield up


def check_answer(name: str, url: str) -> None:
    """One turn by hand: the LLM paths must answer with the fake's reply (the model's JSON
    passed validation at the first try), not a fallback."""
    body = json.dumps({"message": "Hola", "sessionId": "check-answer"}).encode()
    request = urllib.request.Request(f"{url}/api/chat", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data = json.loads(response.read())["data"]
    if name != OURS_OFFLINE and data["respuesta"] != REPLY:
        raise SystemExit(f"{name} did not answer with the fake model's reply: {data}")


def wrk(url: str, connections: int, seconds: float, sessions: str) -> dict[str, float]:
    """One closed loop; wrk inherits this script's core."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", *LUA, url],
        cwd=ROOT,
        env={**os.environ, "SESSION_PREFIX": sessions},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {
        "rps": re.search(r"Requests/sec:\s+([\d.]+)", out),
        "p50": re.search(r"50%\s+([\d.]+\w+)", out),
        "p99": re.search(r"99%\s+([\d.]+\w+)", out),
    }
    if not all(found.values()):
        raise SystemExit(f"could not read wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(SOCKET_ERRORS, out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return {
        "rps": float(found["rps"].group(1)),  # type: ignore[union-attr]
        "p50": _ms(found["p50"].group(1)),  # type: ignore[union-attr]
        "p99": _ms(found["p99"].group(1)),  # type: ignore[union-attr]
        "errors": errors,
    }


def rss_mib(pid: int) -> float:
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return float(sum(p.memory_info().rss for p in tree)) / MIB


def busy(core: Any) -> float:
    """Seconds a core ran anything: not idle, not waiting for I/O (guest time is in user)."""
    return float(core.user + core.nice + core.system + core.irq + core.softirq + core.steal)


def measure(server: Server, connections: int, seconds: float, tag: str) -> Run:
    """A warm-up, then the measured closed loop; fresh sessions for each."""
    wrk(server.url, connections, WARM_UP, f"warm-{tag}")
    process = psutil.Process(server.pid)
    cpu_before = sum(process.cpu_times()[:2])
    core_before = psutil.cpu_times(percpu=True)[SERVER_CORE]
    started = time.monotonic()
    result = wrk(server.url, connections, seconds, f"run-{tag}")
    elapsed = time.monotonic() - started
    core_after = psutil.cpu_times(percpu=True)[SERVER_CORE]
    server_cpu = sum(process.cpu_times()[:2]) - cpu_before
    others = max(0.0, busy(core_after) - busy(core_before) - server_cpu) / elapsed
    return Run(
        result["rps"], result["p50"], result["p99"], int(result["errors"]),
        rss_mib(server.pid), others,
    )  # fmt: skip


def wait_for_quiet(limit: float) -> None:
    """Up to `limit` seconds for the machine's 1-minute load to fall below BUSY_LOAD."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] > BUSY_LOAD and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f}: waiting for a quieter machine", flush=True)
        time.sleep(QUIET_POLL)


def compare(args: argparse.Namespace) -> None:
    original = Path(args.original).resolve()
    if not (original / "server.js").is_file() or not (original / "node_modules").is_dir():
        raise SystemExit(f"{original} is not a checkout of the original after `npm ci`")
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    wait_for_quiet(args.wait_quiet)
    load_before = os.getloadavg()
    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="vs-original-") as tmp:
        llm_port = free_port()
        fake = [PY, "bench/fake_llm_full_lead.py", str(llm_port)]
        with pinned(fake, dict(os.environ), ROOT), servers(original, Path(tmp), llm_port) as up:
            for n in range(args.rounds):
                for i, server in enumerate(up):
                    run = measure(server, args.connections, args.duration, f"{n}-{i}")
                    runs.setdefault(server.name, []).append(run)
                    print(f"round {n + 1} {server.name:20} {run}", flush=True)
    report(args, runs, load_before, os.getloadavg())


def median(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def versus_original(runs: dict[str, list[Run]], name: str) -> list[float]:
    """Each round's req/s as a multiple of the original's in the same round."""
    return [ours.rps / theirs.rps for ours, theirs in zip(runs[name], runs[ORIGINAL], strict=True)]


def report(
    args: argparse.Namespace,
    runs: dict[str, list[Run]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    busy = " (a busy machine)" if load_before[0] > BUSY_LOAD else ""
    print(
        f"\nc={args.connections}, {args.duration:g} s a run, medians of {args.rounds} interleaved"
        f" rounds; servers on core {SERVER_CORE}, wrk and the fake model on core {LOAD_CORE}."
        f"\nLoad average before {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f}{busy}\n"
    )
    print(
        f"| target | req/s (range) | vs original (range) | p50 ms | p99 ms | errors | RSS MiB"
        f" | others on core {SERVER_CORE} |\n|---|---|---|---|---|---|---|---|"
    )
    for name, rs in runs.items():
        rps, ratios = [r.rps for r in rs], versus_original(runs, name)
        print(
            f"| {name} | {median(rs, 'rps'):.0f} ({min(rps):.0f}–{max(rps):.0f})"
            f" | {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
            f" | {median(rs, 'p50_ms'):.1f} | {median(rs, 'p99_ms'):.1f}"
            f" | {sum(r.errors for r in rs)} | {median(rs, 'rss_mib'):.0f}"
            f" | {median(rs, 'others_on_server_core'):.0%} |"
        )
    print("\n(vs original: the median of each round's ratio, as the rounds interleave)")
    for name, target in ((OURS_LLM, LLM_TARGET), (OURS_OFFLINE, OFFLINE_TARGET)):
        ratio = statistics.median(versus_original(runs, name))
        verdict = "holds" if ratio >= target else "does not hold"
        print(f"{name} ≥ {target}× the original's req/s: {ratio:.2f}× — {verdict}")
    p99 = median(runs[ORIGINAL], "p99_ms")
    for name in (OURS_LLM, OURS_OFFLINE):
        ours = median(runs[name], "p99_ms")
        verdict = "holds" if ours <= p99 else "does not hold"
        print(f"p99 of {name} ≤ the original's: {ours:.1f} vs {p99:.1f} ms — {verdict}")
    save_results("vs_original.json", args, runs, load_before, load_after)


def save_results(
    file: str,
    args: argparse.Namespace,
    runs: dict[str, list[Any]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    """The runs as JSON in bench/results/ (git ignores it), for a later look."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / file).write_text(
        json.dumps(
            {
                "connections": args.connections,
                "duration": args.duration,
                "load_before": load_before,
                "load_after": load_after,
                "runs": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", help="a checkout of the original system after `npm ci`")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10, help="seconds a measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument(
        "--wait-quiet", type=float, default=0, metavar="SECONDS",
        help=f"wait up to this long for a load average under {BUSY_LOAD} before measuring",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="profile our LLM path instead")
    parser.add_argument("--offline", action="store_true", help="--profile the offline brain")
    parser.add_argument("--turns", type=int, default=5000, help="chat turns under --profile")
    parser.add_argument("--top", type=int, default=25, help="functions listed under --profile")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: one for the servers, one for the load")
    os.sched_setaffinity(0, {LOAD_CORE})  # children inherit it: wrk, the fake, py-spy
    if args.profile:
        from profile_llm_path import profile

        profile(args.turns, args.connections, args.top, args.offline)
    elif args.original:
        compare(args)
    else:
        parser.error("--original PATH is needed (or --profile)")


if __name__ == "__main__":
    main()

"""One worker against two on this machine, and the original system beside them (issue 15).

    python bench/cluster.py --original PATH [--connections 20] [--duration 10] [--rounds 3]

PATH is a checkout of `ignacioargenis-dev/ia-comercial` after `npm ci`, run with `node` as
its README runs it (`pm2 start server.js`: one process), never copied. One run starts:

- the original, the suite with `WORKERS=1` and the suite with `WORKERS=2`, their LLM paths
  pointed at one instant OpenAI-compatible fake (bench/fake_llm_full_lead.py's answer, served
  by an nginx of one worker process, so the fake costs little CPU): the chat,
  measured with wrk in a closed loop (distinct sessions, bench/vs_original.lua);
- the suite with `WORKERS=1` and with `WORKERS=2` taking signed WhatsApp webhooks with
  distinct message ids (bench/webhook.lua), offline brain, sends to the same nginx as Graph API:
  acknowledgements per second while the suite answers them; each run's backlog is drained
  before the next run starts.

Nothing is pinned: every server has the whole machine (2 cores here), as on a 2-vCPU
server, and the load (wrk, the fakes) runs on it too; each row says how many cores the
server itself used and how much the rest took. Rounds interleave the targets, medians are
reported, with the issue's targets: two workers ≥ 1.4x one, and the LLM path with two
workers ≥ 1.5x the original. Needs `wrk` and nginx. Not part of `make test`; figures in the
README."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_llm
from chat_bench import PY, ROOT, free_port, suite_env, wait_http
from fake_llm_full_lead import LEAD, REPLY
from pinning import pinned
from vs_original import (
    busy,
    check_answer,
    median,
    original_env,
    rss_mib,
    save_results,
    wait_for_quiet,
)
from vs_original import wrk as chat_wrk
from webhook import SECRET, Ids, wait_drained, write_requests
from webhook import wrk as webhook_wrk

ORIGINAL = "original (Node.js, one process)"
CHAT_1, CHAT_2 = "ours, LLM path, WORKERS=1", "ours, LLM path, WORKERS=2"
HOOK_1, HOOK_2 = "ours, webhook acks, WORKERS=1", "ours, webhook acks, WORKERS=2"
WARM_UP = 2.0
# The targets.
WORKERS_TARGET, ORIGINAL_TARGET = 1.4, 1.5


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int
    kind: str  # chat | webhook


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cores: float  # CPU seconds of the server's processes per second
    others_cores: float  # of the machine's busy time, what the rest took (wrk, fakes, ...)
    rss_mib: float


NGINX = "/usr/sbin/nginx"


def nginx_fakes_conf(workdir: Path, llm_port: int, graph_port: int) -> Path:
    """One nginx (one worker process, C) answering as the model and as Meta's Graph API: a
    Python fake answering 400 requests a second takes most of a core, which on two cores
    would cap the figures it is meant to feed. The model's answer is
    fake_llm_full_lead.py's; each Graph send gets its own message id ($request_id)."""
    completion = json.loads(fake_llm.BODY)
    content = json.dumps({"reply": REPLY, "lead": LEAD}, ensure_ascii=False)
    completion["choices"][0]["message"]["content"] = content
    model = json.dumps(completion, ensure_ascii=False)
    graph = '{"messaging_product": "whatsapp", "messages": [{"id": "wamid.$request_id"}]}'
    assert "'" not in model and "$" not in model, "nginx's return would read them"
    # In nginx's quoted strings a backslash escapes: the JSON's own are doubled.
    model = model.replace("\\", "\\\\")
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf = workdir / "nginx-fakes.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {workdir}/nginx-fakes.pid;
error_log {workdir}/nginx-fakes.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{llm_port};
        location / {{ default_type application/json; return 200 '{model}'; }}
    }}
    server {{
        listen 127.0.0.1:{graph_port};
        location / {{ default_type application/json; return 200 '{graph}'; }}
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


def webhook_env(workdir: Path, port: int, graph_port: int, workers: int) -> dict[str, str]:
    env = suite_env(workdir, port, None)
    env = {k: v for k, v in env.items() if not k.startswith("WHATSAPP")}
    env.update(
        WORKERS=str(workers),
        META_APP_SECRET=SECRET,
        WHATSAPP_ACCESS_TOKEN="bench-token-0000000000",
        WHATSAPP_PHONE_NUMBER_ID="106540352242922",
        META_GRAPH_URL=f"http://127.0.0.1:{graph_port}/v21.0",
    )
    return env


@contextmanager
def servers(
    original: Path, workdir: Path, llm_port: int, graph_port: int
) -> Iterator[list[Server]]:
    node = ["node", "--require", str(ROOT / "bench" / "loopback_only.cjs"), "server.js"]
    suite = [PY, "-m", "supervisor.cli", "run"]
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    specs: list[tuple[str, str, list[str], dict[str, str], Path]] = []
    port = free_port()
    specs.append((ORIGINAL, "chat", node, original_env(original, workdir, port, llm_url), original))
    for name, workers in ((CHAT_1, 1), (CHAT_2, 2)):
        port = free_port()
        env = {**suite_env(workdir / f"chat-{workers}", port, llm_port), "WORKERS": str(workers)}
        specs.append((name, "chat", suite, env, ROOT))
    for name, workers in ((HOOK_1, 1), (HOOK_2, 2)):
        port = free_port()
        env = webhook_env(workdir / f"hook-{workers}", port, graph_port, workers)
        specs.append((name, "webhook", suite, env, ROOT))
    with ExitStack() as stack:
        up: list[Server] = []
        for name, kind, args, env, cwd in specs:
            log = workdir / f"server-{len(up)}.log"
            proc = stack.enter_context(pinned(args, env, cwd, None, log))
            url = f"http://127.0.0.1:{env['PORT']}"
            try:
                wait_http(f"{url}/health/live", timeout=90)
                if "WORKERS" in env:
                    wait_http(f"{url}/health/ready", timeout=90)
            except SystemExit:
                tail = log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} did not come up; its output ends:\n{tail}") from None
            if kind == "chat":
                check_answer(name, url)
            up.append(Server(name, url, proc.pid, kind))
        yield up


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (a parent and its workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def machine_busy() -> float:
    return sum(busy(core) for core in psutil.cpu_times(percpu=True))


def measure(
    server: Server, connections: int, seconds: float, tag: str, workdir: Path, ids: Ids
) -> Run:
    requests = workdir / "requests.tsv"

    def load(duration: float, sessions: str) -> dict[str, float]:
        if server.kind == "chat":
            return chat_wrk(server.url, connections, duration, sessions)
        write_requests(requests, ids.take(200_000), 120_000)
        return webhook_wrk(server.url, connections, int(duration), requests)

    load(WARM_UP, f"warm-{tag}")
    if server.kind == "webhook":
        wait_drained(server.url)
    cpu_before, busy_before = tree_cpu(server.pid), machine_busy()
    started = time.monotonic()
    result = load(seconds, f"run-{tag}")
    elapsed = time.monotonic() - started
    server_cpu = tree_cpu(server.pid) - cpu_before
    others = max(0.0, machine_busy() - busy_before - server_cpu)
    rss = rss_mib(server.pid)
    if server.kind == "webhook":
        wait_drained(server.url)
    return Run(
        result["rps"], result["p50"], result["p99"], int(result["errors"]),
        server_cpu / elapsed, others / elapsed, rss,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, help="the original's checkout, npm ci'd")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10, help="seconds a measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS")
    args = parser.parse_args()
    original = Path(args.original).resolve()
    if not (original / "server.js").is_file() or not (original / "node_modules").is_dir():
        raise SystemExit(f"{original} is not a checkout of the original after `npm ci`")
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    wait_for_quiet(args.wait_quiet)
    load_before = os.getloadavg()
    runs: dict[str, list[Run]] = {}
    ids = Ids()
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        workdir = Path(tmp)
        llm_port, graph_port = free_port(), free_port()
        conf = nginx_fakes_conf(workdir, llm_port, graph_port)
        fakes = [NGINX, "-c", str(conf), "-g", "daemon off;"]
        with (
            pinned(fakes, dict(os.environ), ROOT),
            servers(original, workdir, llm_port, graph_port) as up,
        ):
            for n in range(args.rounds):
                for i, server in enumerate(up):
                    run = measure(server, args.connections, args.duration, f"{n}-{i}", workdir, ids)
                    runs.setdefault(server.name, []).append(run)
                    print(f"round {n + 1} {server.name:32} {run}", flush=True)
    report(args, runs, load_before, os.getloadavg())


def ratios(runs: dict[str, list[Run]], ours: str, theirs: str) -> list[float]:
    """Each round's req/s of `ours` as a multiple of `theirs` in the same round."""
    return [a.rps / b.rps for a, b in zip(runs[ours], runs[theirs], strict=True)]


def report(
    args: argparse.Namespace,
    runs: dict[str, list[Run]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print(
        f"\nc={args.connections}, {args.duration:g} s a run, medians of {args.rounds}"
        f" interleaved rounds, {os.cpu_count()} cores shared by the server and the load."
        f"\nLoad average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n"
    )
    print(
        "| target | req/s (range) | p50 ms | p99 ms | errors | server cores | rest cores"
        " | RSS MiB |\n|---|---|---|---|---|---|---|---|"
    )
    for name, rs in runs.items():
        rps = [r.rps for r in rs]
        print(
            f"| {name} | {median(rs, 'rps'):.0f} ({min(rps):.0f}–{max(rps):.0f})"
            f" | {median(rs, 'p50_ms'):.1f} | {median(rs, 'p99_ms'):.1f}"
            f" | {sum(r.errors for r in rs)} | {median(rs, 'server_cores'):.2f}"
            f" | {median(rs, 'others_cores'):.2f} | {median(rs, 'rss_mib'):.0f} |"
        )
    print()
    verdicts = (
        (CHAT_2, CHAT_1, WORKERS_TARGET, "chat, LLM path: 2 workers vs 1"),
        (HOOK_2, HOOK_1, WORKERS_TARGET, "webhook acks: 2 workers vs 1"),
        (CHAT_2, ORIGINAL, ORIGINAL_TARGET, "chat, LLM path: 2 workers vs the original"),
        (CHAT_1, ORIGINAL, None, "chat, LLM path: 1 worker vs the original"),
    )
    for ours, theirs, target, label in verdicts:
        r = ratios(runs, ours, theirs)
        line = f"{label}: {statistics.median(r):.2f}× (rounds {min(r):.2f}–{max(r):.2f})"
        if target is not None:
            verdict = "holds" if statistics.median(r) >= target else "does not hold"
            line += f"; target ≥ {target}× — {verdict}"
        print(line)
    save_results("cluster.json", args, runs, load_before, load_after)


if __name__ == "__main__":
    main()

"""`WORKERS=N`: the parent supervisor of worker processes, as a real process tree. Both
workers answer on the one port; a killed or hung worker is restarted while the other keeps
serving; systemd hears READY=1 only once all are ready; SIGTERM drains every worker; a crash
loop makes the parent give up; `status` lists workers x actors; `/metrics` has every
worker's series; the log files get every worker's lines."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from supervisor import control
from tests.conftest import KNOWN_SECRET
from tests.e2e.process import SuiteProcess
from tests.fakes.openai_server import Answer, FakeOpenAI, Stall, lead_json

START = 40.0  # seconds: two suites start one after the other on two busy cores


def cli(suite: SuiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`ia-comercial ARGS` beside the running suite (its environment, its folder)."""
    env = {k: v for k, v in suite.env.items() if k != "IA_COMERCIAL_WORKER"}
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=suite.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def worker_pids(suite: SuiteProcess) -> dict[str, tuple[int, str, int]]:
    """worker-N -> (pid, state, restarts), from `ia-comercial status`."""
    out = cli(suite, "status").stdout
    rows = re.findall(r"^(worker-\d+)\s+(\d+)\s+(\S+)\s+(\d+)", out, re.MULTILINE)
    return {name: (int(pid), state, int(restarts)) for name, pid, state, restarts in rows}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def workers_seen(url: str, want: int, within: float = START) -> set[str]:
    """The workers that answered /health/detailed, new connections each time."""
    seen: set[str] = set()
    with trio.fail_after(within):
        while len(seen) < want:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(f"{url}/health/detailed")
            seen.add(r.json()["cluster"]["this"]["worker"])
    return seen


async def started(suite: SuiteProcess) -> None:
    await suite.start(wait_ready=False)
    with trio.fail_after(START):
        await suite.wait_ready()
        while [s for _p, s, _r in worker_pids(suite).values()].count("running") < int(
            suite.env["WORKERS"]
        ):
            await trio.sleep(0.2)


async def test_two_workers_share_the_port_and_status_metrics_and_logs_see_both(
    tmp_path: Path,
) -> None:
    suite = SuiteProcess(tmp_path, WORKERS="2", NODE_NAME="nodo")
    await started(suite)
    try:
        assert await workers_seen(suite.url, 2) == {"nodo/1", "nodo/2"}
        status = cli(suite, "status")
        assert status.returncode == 0, status.stderr
        assert "2 workers" in status.stdout
        # Workers x actors: each worker's own actor table under its row.
        for worker in ("worker-1", "worker-2"):
            block = status.stdout.split(f"\n{worker}\n", 1)[1]
            assert re.search(r"^conversation\s+running", block, re.MULTILINE)
        pids = worker_pids(suite)
        assert len({pid for pid, _s, _r in pids.values()}) == 2
        assert suite.process is not None
        assert all(pid != suite.process.pid for pid, _s, _r in pids.values())
        # Any worker's /metrics carries every worker's series.
        for _ in range(4):
            async with httpx.AsyncClient(timeout=10) as client:
                page = (await client.get(f"{suite.url}/metrics")).text
            for worker in ("nodo/1", "nodo/2"):
                assert f'ia_actor_up{{actor="ingress",worker="{worker}"}} 1.0' in page
    finally:
        assert await suite.stop(timeout=60) == 0
    combined = (tmp_path / "logs" / "combined.log").read_text()
    lines = [json.loads(line) for line in combined.splitlines()]
    by_worker = {line.get("worker") for line in lines}
    assert {"nodo/1", "nodo/2"} <= by_worker
    assert any(
        line["message"] == "2 workers ready on 127.0.0.1:" + str(suite.port) for line in lines
    )
    # Only the parent writes the files: no worker-numbered copies beside them.
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["combined.log", "error.log"]


async def test_a_killed_worker_is_restarted_while_the_other_keeps_answering(
    tmp_path: Path,
) -> None:
    suite = SuiteProcess(tmp_path, WORKERS="2")
    await started(suite)
    try:
        victim, _state, _restarts = worker_pids(suite)["worker-2"]
        os.kill(victim, signal.SIGKILL)
        answered = failed = 0
        with trio.fail_after(START):
            while True:
                async with httpx.AsyncClient(timeout=10) as client:
                    try:
                        r = await client.get(f"{suite.url}/health/ready")
                        answered += r.status_code == 200
                    except httpx.TransportError:
                        failed += 1
                rows = worker_pids(suite)
                pid, state, restarts = rows["worker-2"]
                if state == "running" and pid != victim:
                    break
                await trio.sleep(0.1)
        assert restarts == 1 and rows["worker-1"][2] == 0
        assert answered > 0 and failed == 0  # the port never stopped answering
        status = cli(suite, "status").stdout
        assert "killed by SIGKILL" in status
        await workers_seen(suite.url, 2)  # the new worker 2 accepts on the same port
    finally:
        assert await suite.stop(timeout=60) == 0


async def test_a_hung_worker_is_killed_by_the_parents_watchdog_and_restarted(
    tmp_path: Path,
) -> None:
    """With WatchdogSec set, each worker pings its parent from its event loop; a worker
    whose pings stop (SIGSTOP: frozen as a hung loop would be) is killed and restarted."""
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(str(tmp_path / "notify.sock"))
    suite = SuiteProcess(
        tmp_path, WORKERS="2", NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="2000000"
    )
    await started(suite)
    try:
        frozen, _state, _restarts = worker_pids(suite)["worker-1"]
        os.kill(frozen, signal.SIGSTOP)
        with trio.fail_after(START):
            while True:
                pid, state, restarts = worker_pids(suite)["worker-1"]
                if state == "running" and pid != frozen:
                    break
                await trio.sleep(0.2)
        assert restarts == 1
        assert "stopped pinging its watchdog" in cli(suite, "status").stdout
        with trio.fail_after(5):  # killed, not left stopped
            while gone(frozen) is False:
                await trio.sleep(0.05)
    finally:
        assert await suite.stop(timeout=60) == 0
        notify.close()


async def test_ready_once_every_worker_is_ready_and_sigterm_drains_them_all(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [
        Stall(2.0, Answer(lead_json("Respuesta lenta uno."))),
        Stall(2.0, Answer(lead_json("Respuesta lenta dos."))),
    ]
    sock_path = tmp_path / "notify.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await listener.bind(str(sock_path))
    suite = SuiteProcess(
        tmp_path,
        WORKERS="2",
        NOTIFY_SOCKET=str(sock_path),
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
    )
    await suite.start(wait_ready=False)
    heard: list[str] = []

    async def hear_until(line: str) -> None:
        with trio.fail_after(START):
            while line not in heard:
                data = await listener.recv(4096)
                heard.extend(data.decode().splitlines())

    await hear_until("READY=1")
    assert heard.count("READY=1") == 1  # the workers' own READY=1 went to the parent only
    # READY=1 came once both were ready: the parent's own rows say so at that moment.
    path = control.parent_socket_path(tmp_path / "db" / "leads.db")
    rows = control.request(path, {"command": "status"})["actors"]
    assert [(r["name"], r["state"]) for r in rows] == [
        ("worker-1", "running"),
        ("worker-2", "running"),
    ]
    assert len(await workers_seen(suite.url, 2, within=START)) == 2
    results: list[httpx.Response] = []

    async def chat(session: str) -> None:
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            results.append(
                await client.post("/api/chat", json={"message": "hola", "sessionId": session})
            )

    nursery.start_soon(chat, "drena-1")
    nursery.start_soon(chat, "drena-2")
    with trio.fail_after(START):
        while len(fake_llm.requests) < 2:
            await trio.sleep(0.02)
    suite.send_signal(signal.SIGTERM)  # the parent only, as systemd's KillMode=mixed does
    await hear_until("STOPPING=1")
    assert await suite.wait(timeout=60) == 0
    listener.close()
    assert sorted(r.status_code for r in results) == [200, 200]
    assert {r.json()["data"]["respuesta"] for r in results} == {
        "Respuesta lenta uno.",
        "Respuesta lenta dos.",
    }
    combined = (tmp_path / "logs" / "combined.log").read_text()
    assert KNOWN_SECRET not in combined and KNOWN_SECRET not in suite.log_text()
    for number in (1, 2):
        assert f"worker {number} stopped (exit code 0)" in combined


async def test_workers_that_cannot_start_make_the_parent_give_up(tmp_path: Path) -> None:
    """Every worker fails before it is ready (the database file is not a database): past
    the restart intensity the parent stops and exits 1, for systemd to decide."""
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "leads.db").write_bytes(b"not a database at all" * 100)
    suite = SuiteProcess(tmp_path, WORKERS="2")
    await suite.start(wait_ready=False)
    assert await suite.wait(timeout=90) == 1
    text = suite.log_text()
    assert "giving up: actor 'worker-1' restarted more than 5 times" in text
    assert "ended before it was ready, exit code 2" in text


async def test_workers_setting_is_checked(tmp_path: Path) -> None:
    for bad in ("dos", "0", "-1", "65"):
        suite = SuiteProcess(tmp_path, WORKERS=bad)
        result = cli(suite, "check-config")
        assert result.returncode == 2
        assert "WORKERS" in result.stderr, result.stderr
    suite = SuiteProcess(tmp_path, WORKERS="auto")
    assert cli(suite, "check-config").returncode == 0


async def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of the parent cannot pass anything on: each worker sees it is gone and
    stops (drains, leaves the cluster) instead of serving on unsupervised."""
    suite = SuiteProcess(tmp_path, WORKERS="2")
    await started(suite)
    pids = [pid for pid, _s, _r in worker_pids(suite).values()]
    assert await suite.stop(signal.SIGKILL) == -signal.SIGKILL
    with trio.fail_after(30):
        while not all(gone(pid) for pid in pids):
            await trio.sleep(0.1)
    combined = (tmp_path / "logs" / "combined.log").read_text()
    assert "the parent supervisor" not in combined  # nobody was left to write the files
    stderr = suite.log_text()
    assert stderr.count("is gone: stopping") == 2
    assert stderr.count("left the cluster") == 2

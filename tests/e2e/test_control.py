"""The PM2-like control of a running suite: status, restart of one actor, readable logs —
over a Unix socket beside the database that only the suite's user can open."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.conftest import KNOWN_SECRET
from tests.e2e.process import SuiteProcess

ACTORS = ("store", "cluster", "backup", "notifier", "classifier", "conversation", "ingress")


def cli(suite: SuiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=suite.workdir,
        env=suite.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_cli(suite: SuiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: cli(suite, *args))


async def test_status_restart_and_logs_of_a_running_suite(tmp_path: Path) -> None:
    suite = SuiteProcess(
        tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL="http://127.0.0.1:9/v1"
    )
    await suite.start()
    sock = tmp_path / "db" / "control.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    status = await run_cli(suite, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1].split() == ["actor", "state", "restarts", "uptime", "last", "error"]
    table = {line.split()[0]: line.split()[1:3] for line in lines[2:]}
    assert table == {name: ["running", "0"] for name in ACTORS}

    restarted = await run_cli(suite, "restart", "notifier")
    assert restarted.returncode == 0 and restarted.stdout.strip() == "notifier restarted"
    after = await run_cli(suite, "status")
    row = next(line for line in after.stdout.splitlines() if line.startswith("notifier"))
    assert row.split()[1:3] == ["running", "1"]
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200  # the process never stopped serving

    unknown = await run_cli(suite, "restart", "nope")
    assert unknown.returncode == 2 and "no actor named 'nope'" in unknown.stderr

    logs = await run_cli(suite, "logs", "-n", "200")
    assert logs.returncode == 0
    assert "WARNING notifier restarted" not in logs.stdout  # readable, not JSON:
    assert any(
        "WARNING supervisor: actor notifier restarted by an operator" in line
        for line in logs.stdout.splitlines()
    )
    assert not any(line.startswith("{") for line in logs.stdout.splitlines())
    for output in (status.stdout, after.stdout, logs.stdout, logs.stderr):
        assert KNOWN_SECRET not in output
    assert await suite.stop() == 0
    assert not sock.exists()
    gone = await run_cli(suite, "status")
    assert gone.returncode == 1 and "the suite is not running" in gone.stderr

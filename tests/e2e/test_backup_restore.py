"""Backup and restore through the CLI, as ops would: a backup while the suite runs, restore
refused while it runs, then restored after it stopped, the replaced database kept aside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.e2e.process import SuiteProcess


def cli(suite: SuiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=suite.workdir,
        env={**suite.env, "BACKUP_DIR": str(suite.workdir / "backups")},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_backup_while_running_then_restore_after_stopping(tmp_path: Path) -> None:
    suite = SuiteProcess(tmp_path)
    await suite.start()
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        await client.post("/api/chat", json={"message": "Hola", "sessionId": "antes"})
        taken = await trio.to_thread.run_sync(cli, suite, "backup")
        assert taken.returncode == 0, taken.stderr
        assert "integrity ok" in taken.stdout
        [backup] = list((tmp_path / "backups").glob("leads-*.db"))
        await client.post("/api/chat", json={"message": "Hola", "sessionId": "despues"})
        refused = await trio.to_thread.run_sync(cli, suite, "restore", str(backup))
        assert refused.returncode == 2
        assert "another instance of the suite is using" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert (await client.get("/api/chat/session/despues")).status_code == 200
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["store"]["lastBackup"]["ok"] is True
        assert detailed["store"]["lastBackup"]["file"] == backup.name
    assert await suite.stop() == 0

    restored = await trio.to_thread.run_sync(cli, suite, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "the replaced database is kept as" in restored.stdout
    assert list((tmp_path / "db").glob("leads.db.replaced-*"))

    again = SuiteProcess(tmp_path)
    again.port, again.url, again.env["PORT"] = suite.port, suite.url, suite.env["PORT"]
    await again.start()
    async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
        assert (await client.get("/api/chat/session/antes")).status_code == 200
        assert (await client.get("/api/chat/session/despues")).status_code == 404
    assert await again.stop() == 0


async def test_a_second_suite_on_the_same_database_is_refused(tmp_path: Path) -> None:
    first = SuiteProcess(tmp_path)
    await first.start()
    second = SuiteProcess(tmp_path)
    await second.start(wait_ready=False)
    assert await second.wait() == 2
    assert "another instance of the suite is using" in second.log_text()
    assert await first.stop() == 0

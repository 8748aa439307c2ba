"""The owner's alert across a kill -9: committed before the first attempt, so a crash
before the send delivers it after the restart; a crash in the middle of the SMTP exchange
may repeat it once, and the suite says so."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import apsw
import httpx
import trio

from tests.conftest import wait_for
from tests.e2e.process import SuiteProcess
from tests.fakes.smtp_server import FakeSMTP

HOT = "Soy Marta, 987654321, quiero agendar una mantención para hoy"


def notification(db_path: Path) -> dict[str, object] | None:
    db = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = db.execute("SELECT status, attempts FROM owner_notifications").fetchone()
    finally:
        db.close()
    return None if row is None else {"status": row[0], "attempts": row[1]}


async def start(tmp_path: Path, smtp: FakeSMTP) -> SuiteProcess:
    suite = SuiteProcess(tmp_path, DAILY_SUMMARY_AT="off", **smtp.env())
    await suite.start()
    return suite


async def test_kill_9_before_the_send_delivers_after_restart(tmp_path: Path) -> None:
    smtp = FakeSMTP()  # down: the alert is committed but cannot go out yet
    db_path = tmp_path / "db" / "leads.db"
    suite = await start(tmp_path, smtp)
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        r = await client.post("/api/chat", json={"message": HOT, "sessionId": "k9"})
        assert r.json()["data"]["lead"]["estado"] == "caliente"
    await wait_for(lambda: (notification(db_path) or {}).get("attempts") == 1)
    suite.send_signal(signal.SIGKILL)
    await suite.wait()
    smtp.start()
    try:
        again = await start(tmp_path, smtp)
        await wait_for(lambda: len(smtp.messages) == 1, seconds=30)
        await trio.sleep(1.5)
        assert len(smtp.messages) == 1
        assert notification(db_path) == {"status": "sent", "attempts": 2}
        assert await again.stop() == 0
    finally:
        smtp.stop()
    assert "Marta" in str(smtp.messages[0]["Subject"])


async def test_kill_9_mid_send_repeats_it_at_most_once_and_reports_it(tmp_path: Path) -> None:
    hold = threading.Event()
    smtp = FakeSMTP(hold=hold).start()  # takes the message, then holds its answer
    db_path = tmp_path / "db" / "leads.db"
    try:
        suite = await start(tmp_path, smtp)
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            await client.post("/api/chat", json={"message": HOT, "sessionId": "k9"})
        await wait_for(lambda: len(smtp.messages) == 1)
        assert notification(db_path) == {"status": "sending", "attempts": 0}
        suite.send_signal(signal.SIGKILL)
        await suite.wait()
        hold.set()
        smtp.hold = None
        again = await start(tmp_path, smtp)
        await wait_for(lambda: len(smtp.messages) == 2, seconds=30)
        await trio.sleep(1.5)
        assert len(smtp.messages) == 2  # the one cut mid-send, once more; never a third
        assert notification(db_path) == {"status": "sent", "attempts": 1}
        async with httpx.AsyncClient(base_url=again.url) as client:
            work = (await client.get("/health/detailed")).json()["work"]["notifier"]
        assert work["owner_resent_after_crash"] == 1
        assert await again.stop() == 0
    finally:
        hold.set()
        smtp.stop()
    logs = (tmp_path / "logs" / "combined.log").read_text()
    assert "cut mid-send by a crash" in logs

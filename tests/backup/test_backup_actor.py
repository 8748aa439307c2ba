"""The backup actor on a clock the test moves: the daily backup at BACKUP_TIME (business
time), its result in /health/detailed, and `degraded` when it fails or is overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trio

from actors.backup import next_run
from tests.conftest import make_settings, running_suite, wait_for

SANTIAGO = ZoneInfo("America/Santiago")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_next_run_is_in_the_business_time_zone() -> None:
    after = datetime(2026, 3, 2, 5, 59, tzinfo=UTC)  # 02:59 in Santiago
    assert next_run(after, "03:00", SANTIAGO) == datetime(2026, 3, 2, 3, 0, tzinfo=SANTIAGO)
    assert next_run(after + timedelta(minutes=1), "03:00", SANTIAGO) == datetime(
        2026, 3, 3, 3, 0, tzinfo=SANTIAGO
    )


async def test_the_daily_backup_runs_at_its_time_and_shows_in_health(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, BACKUP_TIME="03:00", SCHEDULER_INTERVAL="0.05", BACKUP_DIR=str(tmp_path / "b")
    )
    async with running_suite(settings) as (suite, client):
        clock = Clock(datetime(2026, 3, 2, 2, 59, 58, tzinfo=SANTIAGO))
        suite.clock = clock
        await trio.sleep(0.3)
        assert not list((tmp_path / "b").glob("leads-*.db"))
        clock.at += timedelta(seconds=3)
        await wait_for(lambda: list((tmp_path / "b").glob("leads-*.db")))
        detailed = (await client.get("/health/detailed")).json()
        last = detailed["store"]["lastBackup"]
        assert last["ok"] is True and last["file"] == "leads-20260302-060001.db"
        assert last["sizeBytes"] > 0 and detailed["status"] == "ok"
        assert detailed["work"]["backup"]["taken"] == 1
        await trio.sleep(0.3)
        assert len(list((tmp_path / "b").glob("leads-*.db"))) == 1  # once a day


async def test_a_failed_or_overdue_backup_makes_the_suite_degraded(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the backup folder should be")
    settings = make_settings(
        tmp_path, BACKUP_TIME="03:00", SCHEDULER_INTERVAL="0.05", BACKUP_DIR=str(blocked / "b")
    )
    async with running_suite(settings) as (suite, client):
        clock = Clock(datetime.now(UTC))
        suite.clock = clock
        assert (await client.get("/health/detailed")).json()["status"] == "ok"
        clock.at += timedelta(hours=27)  # past 03:00 and past the 26 h a backup may take
        assert suite.db is not None
        db = suite.db
        await wait_for(lambda: db.scalar("SELECT count(*) FROM backups") == 1)
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["status"] == "degraded"
        reasons = " | ".join(detailed["reasons"])
        assert "el último respaldo falló: NotADirectoryError" in reasons
        assert "respaldo atrasado" in reasons
        assert (await client.get("/health")).json() == {"status": "ok"}  # still cheap


async def test_two_workers_on_one_store_take_one_backup_on_the_leader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path, BACKUP_TIME="03:00", SCHEDULER_INTERVAL="0.05", BACKUP_DIR=str(tmp_path / "b")
    )
    clock = Clock(datetime(2026, 3, 2, 2, 59, 58, tzinfo=SANTIAGO))
    async with running_suite(settings) as (first, client):
        monkeypatch.setenv("IA_COMERCIAL_WORKER", "2")  # the second worker on the same file
        async with running_suite(settings) as (second, _):
            first.clock = second.clock = clock
            assert first.cluster.is_leader() and not second.cluster.is_leader()
            await trio.sleep(0.3)
            clock.at += timedelta(seconds=3)
            await wait_for(lambda: list((tmp_path / "b").glob("leads-*.db")))
            await trio.sleep(0.5)
            assert len(list((tmp_path / "b").glob("leads-*.db"))) == 1
            assert (first.backup_stats.taken, second.backup_stats.taken) == (1, 0)
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["store"]["lastBackup"]["ok"] is True

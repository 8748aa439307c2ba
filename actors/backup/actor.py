"""The backup actor: every day at `BACKUP_TIME` (03:00, business time) an online backup of
the live database in a worker thread (SQLite, `store/backups.py`: `VACUUM INTO` on its own
connection, then `integrity_check`; PostgreSQL, `store/pg_backups.py`: `pg_dump`, then
`pg_restore --list`), its result stored, and backups older than
`BACKUP_KEEP_DAYS` removed (never the newest). In a cluster only the leader (actors/cluster)
takes it. A failed or overdue backup makes
`/health/detailed` say `degraded`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import trio

from sales.business import BusinessConfig
from sales.settings import Settings
from store import backups, pg_backups
from store.backups import BackupResult
from store.db import Database, from_text

log = logging.getLogger("backup")

SECONDS = 1.0
OVERDUE = timedelta(hours=26)  # a daily backup, with two hours of grace


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class BackupStatistics:
    taken: int = 0
    failed: int = 0
    pruned: int = 0


@dataclass
class BackupContext:
    db: Database
    settings: Settings
    business: BusinessConfig
    stats: BackupStatistics = field(default_factory=BackupStatistics)
    clock: Callable[[], datetime] = system_clock
    # Whether this process leads its cluster (actors/cluster): only the leader backs up.
    leader: Callable[[], bool] = lambda: True


def next_run(after: datetime, at: str, zone: ZoneInfo) -> datetime:
    """The first `at` (HH:MM, in `zone`) strictly after `after`."""
    hour, minute = (int(part) for part in at.split(":"))
    local = after.astimezone(zone)
    day = local.date()
    while True:
        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if candidate > local:
            return candidate
        day += timedelta(days=1)


async def backup_now(ctx: BackupContext) -> BackupResult:
    s = ctx.settings
    if s.database_url:
        result = await trio.to_thread.run_sync(
            pg_backups.take, s.database_url, s.backup_dir, ctx.clock()
        )
    else:
        result = await trio.to_thread.run_sync(
            backups.take, s.database_path, s.backup_dir, ctx.clock()
        )
    backups.record(ctx.db, result)
    if result.ok:
        ctx.stats.taken += 1
        removed = backups.prune(s.backup_dir, s.backup_keep_days, ctx.clock())
        ctx.stats.pruned += len(removed)
        log.info(
            "backup %s (%d bytes, %d ms); %d old removed",
            result.path.name if result.path else "?",
            result.size_bytes,
            result.duration_ms,
            len(removed),
        )
    else:
        ctx.stats.failed += 1
        log.error("backup failed: %s", result.error)
    return result


def backup_health(db: Database, now: datetime, running_since: datetime) -> list[str]:
    """Reasons to call the suite degraded: the last backup failed, or none is recent."""
    reasons = []
    last = backups.last(db)
    if last is not None and not last["ok"]:
        reasons.append(f"el último respaldo falló: {last['error']}")
    good = backups.last_good_at(db)
    since = from_text(good) if good else running_since
    if now - since > OVERDUE:
        reasons.append("respaldo atrasado: ninguno bueno en las últimas 26 h")
    return reasons


async def run(
    ctx: BackupContext,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    at = ctx.settings.backup_time
    if at is None:
        await stop.wait()  # scheduled backups off (BACKUP_TIME=off): `ia-comercial backup`
        return
    # A backup is due when BACKUP_TIME falls between two looks at the wall clock: a clock
    # set back never repeats one, a jump forward over 03:00 takes one (not one per day).
    last_look = ctx.clock()
    while not stop.is_set():
        now = ctx.clock()
        zone = ZoneInfo(ctx.business.schedule.timezone)  # the config in force (editable)
        if last_look < now and next_run(last_look, at, zone) <= now:
            if ctx.leader():
                await backup_now(ctx)
            else:
                log.info("backup due: the cluster's leader takes it")
        last_look = now
        # The wall clock is looked at again every SCHEDULER_INTERVAL (it may jump).
        with trio.move_on_after(ctx.settings.scheduler_interval):
            await stop.wait()

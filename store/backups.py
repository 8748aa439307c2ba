"""Backups of the live database: online, consistent, checked, kept for a while.

`VACUUM INTO` on a connection of its own (in a worker thread: it takes seconds on a big
database) writes a consistent snapshot even while the suite writes; the copy is checked
with `PRAGMA integrity_check` before it gets its final name, so a file named
`leads-YYYYMMDD-HHMMSS.db` is always a good backup. Restore refuses while a running suite
holds the database (its lock file), keeps the replaced database aside and checks the file
first. SQLite-specific, like `maintenance.py`: the store's one place for it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import apsw

from .db import BUSY_TIMEOUT_MS, Database, to_text

# SQLite's copies (.db) and PostgreSQL's dumps (.dump, store/pg_backups.py) alike.
NAME = re.compile(r"^leads-(\d{8})-(\d{6})\.(db|dump)$")


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, for a person."""


@dataclass(frozen=True)
class BackupResult:
    path: Path | None
    size_bytes: int
    duration_ms: int
    ok: bool
    error: str | None
    at: str


def take(db_path: Path, backup_dir: Path, now: datetime | None = None) -> BackupResult:
    """One online backup (blocking: run it in a worker thread)."""
    started = time.monotonic()
    at = (now or datetime.now(UTC)).astimezone(UTC)
    final = backup_dir / f"leads-{at:%Y%m%d-%H%M%S}.db"
    partial = backup_dir / f".{final.name}.partial"
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        for stale in backup_dir.glob(".leads-*.db.partial"):
            stale.unlink(missing_ok=True)  # a backup cut by a crash: never a good copy
        source = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            source.set_busy_timeout(BUSY_TIMEOUT_MS)
            source.execute("VACUUM INTO ?", (str(partial),))
        finally:
            source.close()
        problem = integrity_problem(partial)
        if problem:
            raise BackupError(f"the copy failed integrity_check: {problem}")
        os.replace(partial, final)
    except (apsw.Error, OSError, BackupError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return BackupResult(
            None,
            0,
            ms_since(started),
            False,
            f"{type(exc).__name__}: {exc}",
            to_text(at),
        )
    return BackupResult(final, final.stat().st_size, ms_since(started), True, None, to_text(at))


def integrity_problem(path: Path) -> str | None:
    """None when `path` is a sound SQLite database, else what is wrong."""
    if not path.is_file():
        return "no such file"
    try:
        connection = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        connection.set_busy_timeout(BUSY_TIMEOUT_MS)
        try:
            rows = [str(r[0]) for r in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    except apsw.Error as exc:
        return f"not a readable SQLite database ({type(exc).__name__})"
    return None if rows == ["ok"] else "; ".join(rows[:5])


def record(db: Database, result: BackupResult) -> None:
    db.execute(
        "INSERT INTO backups (at, path, size_bytes, duration_ms, ok, error)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            result.at,
            result.path.name if result.path else None,
            result.size_bytes,
            result.duration_ms,
            int(result.ok),
            result.error,
        ),
    )


def last(db: Database) -> dict[str, object] | None:
    return db.one(
        "SELECT at, path, size_bytes, duration_ms, ok, error FROM backups ORDER BY id DESC LIMIT 1"
    )


def last_good_at(db: Database) -> str | None:
    value = db.scalar("SELECT max(at) FROM backups WHERE ok = 1")
    return None if value is None else str(value)


def files(backup_dir: Path) -> list[tuple[datetime, Path]]:
    """The backups in `backup_dir`, oldest first."""
    found = []
    for path in backup_dir.glob("leads-*") if backup_dir.is_dir() else ():
        match = NAME.match(path.name)
        if match:
            when = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
            found.append((when.replace(tzinfo=UTC), path))
    return sorted(found)


def prune(backup_dir: Path, keep_days: int, now: datetime) -> list[Path]:
    """Delete backups older than `keep_days`; the newest one always stays."""
    existing = files(backup_dir)
    removed = []
    for when, path in existing[:-1]:
        if now - when > timedelta(days=keep_days):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def held(db_path: Path, worker: int | None = None) -> Iterator[None]:
    """A claim on the database, in lock files beside it. A suite claims it as its worker
    (sales/identity.py): several workers share one file, each number at most once; without
    a worker (`restore`) the claim is the whole file, refused while any worker holds it."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(db_path), "ab") as whole:
        _claim(whole, fcntl.LOCK_EX if worker is None else fcntl.LOCK_SH, db_path, worker)
        try:
            if worker is None:
                yield
                return
            with open(worker_lock_path(db_path, worker), "ab") as own:
                _claim(own, fcntl.LOCK_EX, db_path, worker)
                try:
                    yield
                finally:
                    fcntl.flock(own, fcntl.LOCK_UN)
        finally:
            fcntl.flock(whole, fcntl.LOCK_UN)


def _claim(lock: IO[bytes], how: int, db_path: Path, worker: int | None) -> None:
    try:
        fcntl.flock(lock, how | fcntl.LOCK_NB)
    except BlockingIOError:
        who = "" if worker is None else f" as worker {worker}"
        raise BackupError(
            f"another instance of the suite is using {db_path}{who} (stop it first)"
        ) from None


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def worker_lock_path(db_path: Path, worker: int) -> Path:
    return db_path.with_name(f"{db_path.name}.worker-{worker}.lock")


def restore(db_path: Path, source: Path) -> Path | None:
    """Replace the database with `source`; returns where the replaced one was kept."""
    problem = integrity_problem(source)
    if problem:
        raise BackupError(f"{source}: {problem}; nothing was restored")
    with held(db_path):
        kept: Path | None = None
        if db_path.exists():
            kept = db_path.with_name(f"{db_path.name}.replaced-{datetime.now(UTC):%Y%m%d-%H%M%S}")
            os.replace(db_path, kept)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{db_path}{suffix}")
                if side.exists():
                    os.replace(side, Path(f"{kept}{suffix}"))
        partial = db_path.with_name(f".{db_path.name}.restoring")
        shutil.copyfile(source, partial)
        os.replace(partial, db_path)
    return kept


def ms_since(started: float) -> int:
    """Milliseconds since `started` (a `time.monotonic()`), for a BackupResult."""
    return int((time.monotonic() - started) * 1000)

"""Backups of the store on PostgreSQL: `pg_dump` in its custom format, checked, pruned.

The dump covers the store's schema (the connection's `current_schema()`, `public` unless
the URL's options say otherwise). It is written under a temporary name and checked with
`pg_restore --list` before it gets its final name, so a file named
`leads-YYYYMMDD-HHMMSS.dump` is always a readable backup; store/backups.py prunes them with
the SQLite ones. Restore checks the file the same way, dumps the current store beside the
backups first (`replaced-YYYYMMDD-HHMMSS.dump`), then restores in one transaction. The
password goes to the programs in PGPASSWORD, never on their command line."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from .backups import BackupError, BackupResult, ms_since
from .db import to_text
from .postgres import location, redact, url_without_password

DUMP_TIMEOUT = 3600  # seconds: a big store dumps in minutes; a stuck one must not hang forever


def take(url: str, backup_dir: Path, now: datetime | None = None) -> BackupResult:
    """One backup with pg_dump (blocking: run it in a worker thread)."""
    started = time.monotonic()
    at = (now or datetime.now(UTC)).astimezone(UTC)
    final = backup_dir / f"leads-{at:%Y%m%d-%H%M%S}.dump"
    try:
        _dump(url, final, backup_dir)
    except (OSError, BackupError) as exc:
        message = redact(str(exc), location(url).password)
        return BackupResult(None, 0, ms_since(started), False, message, to_text(at))
    return BackupResult(final, final.stat().st_size, ms_since(started), True, None, to_text(at))


def dump_problem(path: Path) -> str | None:
    """None when `path` is a custom-format dump pg_restore can read, else what is wrong."""
    if not path.is_file():
        return "no such file"
    listed = subprocess.run(
        [_program("pg_restore"), "--list", str(path)],
        capture_output=True,
        text=True,
        timeout=DUMP_TIMEOUT,
    )
    if listed.returncode != 0:
        return f"not a readable pg_dump file ({_first_line(listed.stderr)})"
    if " TABLE DATA " not in listed.stdout:
        return "a pg_dump file without the store's tables"
    return None


def restore(url: str, source: Path, backup_dir: Path) -> Path:
    """Replace the store's contents with the dump `source`; returns the dump of what was
    replaced (kept in `backup_dir`)."""
    problem = dump_problem(source)
    if problem:
        raise BackupError(f"{source}: {problem}; nothing was restored")
    kept = backup_dir / f"replaced-{datetime.now(UTC):%Y%m%d-%H%M%S}.dump"
    _dump(url, kept, backup_dir)
    _run(
        url,
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        str(source),
    )
    return kept


def _dump(url: str, final: Path, backup_dir: Path) -> None:
    partial = backup_dir / f".{final.name}.partial"
    backup_dir.mkdir(parents=True, exist_ok=True)
    for stale in backup_dir.glob(".*.dump.partial"):
        stale.unlink(missing_ok=True)  # a dump cut by a crash: never a good copy
    try:
        schema = _schema(url)
        _run(url, "pg_dump", "--format=custom", f"--schema={schema}", f"--file={partial}")
        problem = dump_problem(partial)
        if problem:
            raise BackupError(f"the dump failed pg_restore --list: {problem}")
        os.replace(partial, final)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _schema(url: str) -> str:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_schema()").fetchone()
    except psycopg.Error as exc:
        raise BackupError(f"cannot reach {location(url)} ({type(exc).__name__})") from None
    if row is None or row[0] is None:
        raise BackupError(f"{location(url)}: no schema in the search_path")
    return str(row[0])


def _run(url: str, program: str, *args: str) -> None:
    """Run a PostgreSQL client program against the store, its password in PGPASSWORD."""
    env = {**os.environ}
    password = location(url).password
    if password:
        env["PGPASSWORD"] = password
    done = subprocess.run(
        [_program(program), *args, f"--dbname={url_without_password(url)}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DUMP_TIMEOUT,
    )
    if done.returncode != 0:
        reason = redact(_first_line(done.stderr), password)
        raise BackupError(f"{program} failed (exit {done.returncode}): {reason}")


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found (Debian: apt-get install postgresql-client)")
    return found


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"

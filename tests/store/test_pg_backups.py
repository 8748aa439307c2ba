"""Backup and restore on PostgreSQL, as a user runs them (`ia-comercial backup` / `restore`
with DATABASE_URL): a checked pg_dump, pruned with the SQLite backups, restored in one
transaction with the replaced contents kept; the password never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store import backups, conversations, messages
from store.backends import PostgresStore
from tests.conftest import postgres_schema, require_system

PASSWORD = "pw-KNOWN-backup"  # the test server trusts 127.0.0.1: sent, ignored, never shown


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(DATABASE_URL=url, BACKUP_DIR=str(tmp_path / "backups"))
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _messages(url: str) -> list[str]:
    store = PostgresStore.open(url, pool_size=1)
    try:
        with store.connection() as db:
            return [str(r[0]) for r in db.rows("SELECT content FROM messages ORDER BY id")]
    finally:
        store.close()


def _say(url: str, text: str) -> None:
    store = PostgresStore.open(url, pool_size=1)
    try:
        with store.connection() as db:
            conv = conversations.open_conversation(db, "web", "s")
            messages.add_inbound(db, conv.id, "web", text)
    finally:
        store.close()


def test_a_checked_dump_is_taken_recorded_and_restored(tmp_path: Path) -> None:
    require_system("pg_dump", "postgresql-client")
    with postgres_schema() as plain:
        url = plain.replace("://postgres@", f"://postgres:{PASSWORD}@")
        _say(url, "antes")
        taken = cli(tmp_path, url, "backup")
        assert taken.returncode == 0, taken.stderr
        assert "pg_restore --list ok" in taken.stdout
        (dump,) = (tmp_path / "backups").glob("leads-*.dump")
        assert [path for _at, path in backups.files(tmp_path / "backups")] == [dump]
        listed = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True)
        assert listed.returncode == 0
        store = PostgresStore.open(url, pool_size=1)
        with store.connection() as db:
            last = backups.last(db)
        store.close()
        assert last is not None and last["ok"] == 1 and last["path"] == dump.name

        _say(url, "después")
        assert _messages(url) == ["antes", "después"]
        restored = cli(tmp_path, url, "restore", str(dump))
        assert restored.returncode == 0, restored.stderr
        assert _messages(url) == ["antes"]
        (kept,) = (tmp_path / "backups").glob("replaced-*.dump")
        assert "kept as" in restored.stdout and str(kept) in restored.stdout

        junk = tmp_path / "junk.dump"
        junk.write_text("not a dump")
        refused = cli(tmp_path, url, "restore", str(junk))
        assert refused.returncode == 2 and "not a readable pg_dump file" in refused.stderr
        assert _messages(url) == ["antes"]
        for run in (taken, restored, refused):
            assert PASSWORD not in run.stdout + run.stderr and "Traceback" not in run.stderr


def test_a_failed_dump_is_reported_without_the_password(tmp_path: Path) -> None:
    require_system("pg_dump", "postgresql-client")
    from store import pg_backups

    result = pg_backups.take(f"postgresql://ia:{PASSWORD}@127.0.0.1:9/ventas", tmp_path)
    assert not result.ok and result.error is not None and "127.0.0.1:9" in result.error
    assert PASSWORD not in result.error and list(tmp_path.iterdir()) == []


def test_old_dumps_are_pruned_with_the_sqlite_backups(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 3, tzinfo=UTC)
    for day, suffix in ((0, "dump"), (1, "db"), (9, "dump")):
        (tmp_path / f"leads-{start + timedelta(days=day):%Y%m%d-%H%M%S}.{suffix}").write_text("x")
    removed = backups.prune(tmp_path, 7, start + timedelta(days=9, hours=1))
    assert sorted(p.name for p in removed) == [
        "leads-20260301-030000.dump",
        "leads-20260302-030000.db",
    ]
    assert [p.name for _w, p in backups.files(tmp_path)] == ["leads-20260310-030000.dump"]

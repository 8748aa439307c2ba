"""Online backups: consistent under a steady writer, checked, pruned on a clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import apsw
import pytest

from store import backups
from store.backups import BackupError
from store.db import open_database


def count(path: Path) -> int:
    connection = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    connection.set_busy_timeout(5000)  # a reader can meet the writer's WAL reset
    try:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        connection.close()


def test_twenty_backups_under_a_steady_writer_are_all_sound(tmp_path: Path) -> None:
    db_path = tmp_path / "db" / "leads.db"
    db = open_database(db_path)
    db.execute(
        "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
        " VALUES ('web', 'w', 'x', 'x')"
    )
    db.close()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        connection = apsw.Connection(str(db_path))
        connection.set_busy_timeout(5000)
        while not stop.is_set():
            with connection:
                connection.execute(
                    "INSERT INTO messages (conversation_id, channel, role, content, created_at)"
                    " VALUES (1, 'web', 'user', ?, 'x')",
                    ("mensaje " * 50,),
                )
            written[0] += 1
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = []
        for i in range(20):
            before = count(db_path)
            result = backups.take(
                db_path, tmp_path / "backups", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(i)
            )
            after = count(db_path)
            assert result.ok, result.error
            assert result.path is not None
            copies.append((before, result.path, after))
    finally:
        stop.set()
        thread.join()
    assert written[0] > 100  # the writer really wrote throughout
    for before, path, after in copies:
        assert backups.integrity_problem(path) is None
        assert before <= count(path) <= after
    assert not list((tmp_path / "backups").glob(".*partial"))


def test_a_backup_that_cannot_be_written_is_a_failure_with_its_reason(tmp_path: Path) -> None:
    db_path = tmp_path / "leads.db"
    open_database(db_path).close()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the folder should be")
    result = backups.take(db_path, blocked / "sub")
    assert not result.ok and result.path is None
    assert result.error is not None and "NotADirectoryError" in result.error


def test_retention_keeps_recent_copies_and_always_the_newest(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    start = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    for day in range(10):
        (folder / f"leads-{start + timedelta(days=day):%Y%m%d-%H%M%S}.db").write_text("x")
    (folder / "notes.txt").write_text("not a backup")
    now = start + timedelta(days=9, hours=1)
    removed = backups.prune(folder, 7, now)
    assert [p.name for p in removed] == [
        "leads-20260301-030000.db",
        "leads-20260302-030000.db",
        "leads-20260303-030000.db",  # 7 days and 1 hour old
    ]
    assert len(backups.files(folder)) == 7 and (folder / "notes.txt").exists()
    # Months later, with no new backup: everything old goes, but never the newest.
    backups.prune(folder, 7, now + timedelta(days=90))
    assert [p.name for _w, p in backups.files(folder)] == ["leads-20260310-030000.db"]


def test_restore_checks_the_file_and_refuses_a_held_database(tmp_path: Path) -> None:
    db_path = tmp_path / "leads.db"
    open_database(db_path).close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(BackupError, match="nothing was restored"):
        backups.restore(db_path, junk)
    good = backups.take(db_path, tmp_path / "b")
    assert good.path is not None
    with backups.held(db_path), pytest.raises(BackupError, match="another instance"):
        backups.restore(db_path, good.path)
    kept = backups.restore(db_path, good.path)
    assert kept is not None and kept.exists() and ".replaced-" in kept.name


def test_workers_share_a_database_each_number_once_and_restore_waits_for_all(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "leads.db"
    open_database(db_path).close()
    good = backups.take(db_path, tmp_path / "b")
    assert good.path is not None
    with backups.held(db_path, 1), backups.held(db_path, 2):
        with pytest.raises(BackupError, match=r"another instance .* as worker 2"):
            with backups.held(db_path, 2):
                pass
        with pytest.raises(BackupError, match="another instance"):
            backups.restore(db_path, good.path)
    assert backups.restore(db_path, good.path) is not None


def test_a_backup_cut_by_a_crash_leaves_nothing_behind(tmp_path: Path) -> None:
    db_path = tmp_path / "leads.db"
    open_database(db_path).close()
    folder = tmp_path / "backups"
    folder.mkdir()
    cut = folder / ".leads-20260101-030000.db.partial"  # what a kill -9 mid-VACUUM leaves
    cut.write_bytes(b"half a database")
    result = backups.take(db_path, folder)
    assert result.ok and not cut.exists()
    assert [p.name for _w, p in backups.files(folder)] == [result.path.name if result.path else ""]

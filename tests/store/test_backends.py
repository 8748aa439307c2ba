"""The two backends behind one interface: placeholders, transactions, failed writes,
`Store.call`, accent-blind search and the schema, each on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from store import conversations, lead_reports, leads, messages
from store.backends import PostgresStore, Store
from store.db import Database
from store.errors import ConstraintError, StoreError, StoreUnavailable
from store.migrations import MIGRATIONS
from store.postgres import location, redact, to_pyformat
from store.text import fold
from tests.conftest import open_test_store, postgres_schema


def _read_only(db: Database, on: bool) -> None:
    """Make this connection refuse writes (as a full disk or a standby would)."""
    if db.backend == "sqlite":
        db.execute(f"PRAGMA query_only = {int(on)}")
    else:
        db.execute(f"SET default_transaction_read_only = {'on' if on else 'off'}")


def _count(db: Database, table: str = "backups") -> int:
    return int(db.scalar(f"SELECT count(*) FROM {table}"))


def _add_backup_row(db: Database) -> int:
    return db.insert("INSERT INTO backups (at, ok) VALUES (?, 1)", ("x",))


def test_question_marks_become_placeholders_only_outside_quotes() -> None:
    sql = "SELECT '?', \"a?b\", ? FROM t WHERE e LIKE 'alert%' AND n = ?"
    assert to_pyformat(sql) == "SELECT '?', \"a?b\", %s FROM t WHERE e LIKE 'alert%%' AND n = %s"
    assert to_pyformat("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_a_question_mark_in_a_literal_is_text_on_both_backends(db: Database) -> None:
    assert db.scalar("SELECT '?' || ? || '%'", ("x",)) == "?x%"
    assert db.one("SELECT ? AS a, '?' AS b", (1,)) == {"a": 1, "b": "?"}


def test_a_nested_transaction_joins_the_outer_one(db: Database) -> None:
    with db.transaction():
        _add_backup_row(db)
        with pytest.raises(RuntimeError), db.transaction():
            _add_backup_row(db)
            raise RuntimeError("caught by the caller inside the outer transaction")
    assert _count(db) == 2  # no savepoint: the inner write commits with the outer one
    with pytest.raises(RuntimeError), db.transaction():
        _add_backup_row(db)
        with db.transaction():
            _add_backup_row(db)
        raise RuntimeError("the outer one fails")
    assert _count(db) == 2  # both rolled back


def test_a_savepoint_undoes_only_its_own_writes(db: Database) -> None:
    with db.transaction():
        _add_backup_row(db)
        with pytest.raises(RuntimeError), db.savepoint():
            _add_backup_row(db)
            raise RuntimeError("this part fails alone")
        with db.savepoint():
            _add_backup_row(db)
    assert _count(db) == 2  # the first and the third
    conversations.open_conversation(db, "web", "taken")
    with db.transaction():
        _add_backup_row(db)
        # A failed statement (PostgreSQL would abort the whole transaction without it)
        with pytest.raises(ConstraintError), db.savepoint():
            db.execute(
                "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
                " VALUES ('web', 'taken', 'x', 'x')"
            )
        _add_backup_row(db)
    assert _count(db) == 4


def test_a_refused_write_is_recorded_for_health_until_a_write_succeeds(store: Store) -> None:
    with store.connection() as db:
        assert db.probe_write() is None and db.last_write_failure is None
        _read_only(db, True)
        try:
            with pytest.raises(StoreUnavailable):
                _add_backup_row(db)
            failure = db.last_write_failure
            assert failure is not None and store.last_write_failure == failure
            assert failure.error in ("ReadOnlyError", "ReadOnlySqlTransaction")
            assert db.probe_write() is not None
            with pytest.raises(StoreUnavailable), db.transaction():
                _add_backup_row(db)
            assert db.last_write_failure is not None
        finally:
            _read_only(db, False)
        assert db.probe_write() is None
        _add_backup_row(db)
        assert db.last_write_failure is None and store.last_write_failure is None


def test_a_broken_constraint_is_a_constraint_error_not_a_write_failure(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    with pytest.raises(ConstraintError):
        db.execute(
            "INSERT INTO conversations (channel, external_key, created_at, updated_at)"
            " VALUES ('web', 's', 'x', 'x')"
        )
    assert conversations.get(db, conv.id) is not None
    assert db.last_write_failure is None  # the data's fault, not the store's


async def test_call_runs_inline_on_sqlite_and_in_a_thread_on_postgresql(store: Store) -> None:
    def where(db: Database) -> tuple[int, str]:
        return threading.get_ident(), db.backend

    ident, backend = await store.call(where)
    assert backend == store.backend
    assert (ident == threading.get_ident()) == (store.backend == "sqlite")


async def test_a_called_function_is_one_transaction(store: Store) -> None:
    def two_writes_then_fail(db: Database, fail: bool) -> int:
        with db.transaction():
            _add_backup_row(db)
            _add_backup_row(db)
            if fail:
                raise ValueError("after two writes")
        return _count(db)

    with pytest.raises(ValueError):
        await store.call(two_writes_then_fail, True)
    assert await store.call(_count) == 0
    assert await store.call(two_writes_then_fail, fail=False) == 2


async def test_calls_on_postgresql_share_the_pool_under_the_limiter(tmp_path: Path) -> None:
    with open_test_store("postgresql", tmp_path) as store:
        running = peak = 0
        lock = threading.Lock()

        def slow(db: Database, n: int) -> int:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return int(db.scalar("SELECT ? FROM pg_sleep(0.05)", (n,)))
            finally:
                with lock:
                    running -= 1

        results: list[int] = []

        async def one(n: int) -> None:
            results.append(await store.call(slow, n))

        async with trio.open_nursery() as nursery:
            for n in range(12):
                nursery.start_soon(one, n)
        assert sorted(results) == list(range(12))
        assert 1 < peak <= 4  # the test store's pool has 4 connections


FOLD_SAMPLES = (
    "Ñandú",
    "JOSÉ PÉREZ",
    "Peñalolén",
    "María-José O'Higgins",
    "ÀÉÎÕÜ àéîõü ç Ç",
    "Straße ẞ",
    "ΣΊΣΥΦΟΣ",
    "ﬁn ﬀ",
    "ǅemal",
    "İstanbul",
    "e\u0301 a\u0300",
    "١٢٣ 😀 ok",
    "",
)


def test_ia_fold_in_sql_is_python_fold_on_both_backends(db: Database) -> None:
    for text in FOLD_SAMPLES:
        assert db.scalar("SELECT ia_fold(?)", (text,)) == fold(text), text
    assert db.scalar("SELECT ia_fold(NULL)") is None


def test_the_dashboard_search_is_accent_and_case_blind_on_both_backends(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    lead = leads.create(db, conv.id, "web", "s")
    db.execute("UPDATE leads SET name = ?, area = ? WHERE id = ?", ("JOSÉ Ñúñez", "Ñuñoa", lead.id))
    for typed in ("jose", "ÑUÑEZ", "nunoa", "josé ñ"):
        found = lead_reports.search(db, lead_reports.LeadFilter(text=typed))
        assert found.total == 1 and [r["id"] for r in found.rows] == [lead.id], typed
    for typed in ("%%%", "???", '"*"', "_o_"):
        assert lead_reports.search(db, lead_reports.LeadFilter(text=typed)).total == 0


def test_statistics_read_the_same_on_both_backends(db: Database) -> None:
    conv = conversations.open_conversation(db, "web", "s")
    inbound = messages.add_inbound(db, conv.id, "web", "hola")
    assert inbound is not None
    messages.record_reply(db, conv.id, "web", [inbound.id], messages.ReplyRecord("hi", "llm"))
    leads.create(db, conv.id, "web", "s")
    stats = lead_reports.statistics(db)
    assert stats["total"] == 1 and stats["porClase"]["frio"] == 1
    assert stats["embudo"] == {"web": {"new": 1, "contacted": 0, "won": 0}}
    median = stats["medianaPrimeraRespuestaSegundos"]
    assert isinstance(median, float) and 0 <= median < 5


def test_postgresql_migrations_run_once_and_need_a_twin_for_each_sqlite_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with postgres_schema() as url:
        first = PostgresStore.open(url, pool_size=1)
        first.close()
        again = PostgresStore.open(url, pool_size=1)  # already migrated: nothing to do
        with again.connection() as db:
            assert db.schema_version() == len(MIGRATIONS) and _count(db, "schema_version") == 1
        again.close()
        import store.postgres

        extra = len(MIGRATIONS) + 1
        monkeypatch.setattr(
            store.postgres, "MIGRATIONS", (*store.postgres.MIGRATIONS, f"-- {extra}")
        )
        with pytest.raises(StoreError, match=f"migration {extra} has no PostgreSQL twin"):
            PostgresStore.open(url, pool_size=1)


KNOWN_PASSWORD = "pw-KNOWN-s3cr3t/+!"


def test_the_url_password_never_shows_in_locations_or_errors() -> None:
    url = f"postgresql://ia:{KNOWN_PASSWORD.replace('/', '%2F')}@127.0.0.1:9/ventas"
    where = location(url)
    assert where.password == KNOWN_PASSWORD
    assert str(where) == "postgresql://ia@127.0.0.1:9/ventas"
    assert KNOWN_PASSWORD not in repr(where) and KNOWN_PASSWORD not in f"{where!r} {[where]}"
    assert redact(f"bad {KNOWN_PASSWORD} and {url}", KNOWN_PASSWORD).count("***") == 2
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore.open(url)  # nothing listens on port 9
    assert KNOWN_PASSWORD not in str(caught.value) and "%2F" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)

"""The owner's reads off the event loop (issue 17): `await readers.call(fn, *args)` runs
`fn(db, *args)` in a worker thread on a read connection of its own, never the suite's.

SQLite: WAL lets these readers run beside the writer on the trio thread (each read sees the
last commit); the connections are `query_only`. PostgreSQL: connections of their own to the
server, read-only. At most `size` reads run at once (a `trio.CapacityLimiter`): the owner
cannot take every thread and connection from the channels. A connection found lost is
dropped and the next read opens a new one.

Per-row work stays in the database's C code (apsw and psycopg release the GIL while a
statement steps); the Python in `fn` should be a page's worth, not a table's: the CSV
export is a process of its own (store/lead_csv.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import apsw
import trio

from .base import Database
from .errors import StoreUnavailable
from .pg_loop import connect
from .postgres import PostgresDatabase, WriteLog, location
from .sqlite import BUSY_TIMEOUT_MS, STATEMENT_CACHE, SqliteDatabase, _sql_fold

P = ParamSpec("P")
T = TypeVar("T")

READS_AT_ONCE = 2  # of 2 cores: the loop keeps one


class Readers:
    """Read connections opened by `connect` (blocking, in a worker thread) on demand, at
    most `size` in use at once."""

    def __init__(self, connect: Callable[[], Database], size: int = READS_AT_ONCE) -> None:
        self._connect = connect
        self._idle: list[Database] = []
        self._lock = threading.Lock()
        self._closed = False
        self.limiter = trio.CapacityLimiter(size)

    async def call(
        self, fn: Callable[Concatenate[Database, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        def run() -> T:
            db = self._take()
            try:
                result = fn(db, *args, **kwargs)
            except StoreUnavailable:
                db.close()  # lost, or the file cannot be read now: the next read opens anew
                raise
            except BaseException:
                self._give_back(db)
                raise
            self._give_back(db)
            return result

        return await trio.to_thread.run_sync(run, limiter=self.limiter)

    def _take(self) -> Database:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, db: Database) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(db)
                return
        db.close()

    def close(self) -> None:
        """Close the idle connections; one in use closes when its read ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


def sqlite_reader(path: Path) -> SqliteDatabase:
    """A connection that only reads the store's file (migrated by the suite already)."""
    # Never created here: a file that is not there is an error, not a new empty store.
    connection = apsw.Connection(
        str(path), flags=apsw.SQLITE_OPEN_READWRITE, statementcachesize=STATEMENT_CACHE
    )
    connection.set_busy_timeout(BUSY_TIMEOUT_MS)
    connection.execute("PRAGMA query_only = 1")
    connection.create_scalar_function("ia_fold", _sql_fold, 1, deterministic=True)
    return SqliteDatabase(connection, path)


def postgres_reader(url: str) -> Database:
    """A read-only connection of its own to the server (the suite's options and timeouts)."""
    connection: Any = connect(url)
    connection.execute("SET default_transaction_read_only = on")
    # A plan for each search's own pattern: psycopg prepares a statement run 5 times, and
    # PostgreSQL's generic plan for `LIKE ?` then walked every message (200 ms at 50,000
    # leads) where the pattern's plan takes the trigram index (7 ms).
    connection.execute("SET plan_cache_mode = force_custom_plan")
    # Told apart from the suite's own connection in pg_stat_activity.
    connection.execute(
        "SELECT set_config('application_name', current_setting('application_name')"
        " || ' (owner reads)', false)"
    )
    return PostgresDatabase(connection, location(url), WriteLog())


def readers_for(database_path: Path, database_url: str | None) -> Readers:
    """The owner's readers of the suite's store: PostgreSQL's when a URL is set."""
    if database_url:
        return Readers(partial(postgres_reader, database_url))
    return Readers(partial(sqlite_reader, database_path))

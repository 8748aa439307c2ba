"""How async code reaches the store: `await store.call(fn, *args)`, on either backend.

`fn` is a store function, `fn(db, *args, **kwargs)`, synchronous and free of awaits (rule:
no await inside a transaction); it may open `db.transaction()` and run several statements
as one unit:

    lead = await store.call(leads.get, lead_id)
    reply_id = await store.call(messages.record_reply, conversation_id, channel, ids, reply)

    def _hand_over(db: Database, conversation_id: int) -> int:   # several statements, one commit
        with db.transaction():
            conversations.set_paused(db, conversation_id, True)
            return messages.hold(db, pending_ids(db, conversation_id))

    held = await store.call(_hand_over, conversation_id)

SQLite (`DATABASE_PATH`, the default): `fn` runs inline on the trio thread on the one apsw
connection — no thread hop, microseconds, as the actors call the store today. PostgreSQL
(`DATABASE_URL=postgresql://...`): `fn` runs in a worker thread
(`trio.to_thread.run_sync` under a `CapacityLimiter` as large as the pool) on a connection
lent by a `psycopg_pool.ConnectionPool` for the whole call, so its transaction is on one
connection. A cancelled caller waits for `fn` to finish (a thread cannot be interrupted):
keep `fn` short; long work (an export) belongs in its own thread with its own connection.

Sync code (the CLI, a worker thread of its own) uses `with store.connection() as db:`.
The running suite's actors do not come here: they call the store on the trio thread, on
one connection of the suite's own (store/pg_loop.py on PostgreSQL), as on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import psycopg
import psycopg_pool
import trio

from .base import Database, WriteFailure
from .errors import StoreUnavailable
from .postgres import Location, PostgresDatabase, WriteLog, location, migrate, translate
from .sqlite import SqliteDatabase, open_database

P = ParamSpec("P")
T = TypeVar("T")

POOL_SIZE = 8  # connections (and worker threads) per process
CONNECT_TIMEOUT = 5  # seconds, to reach the server, or to get a connection from the pool


class Store(Protocol):
    """The store as async code sees it (see the module's docstring)."""

    backend: str  # "sqlite" | "postgresql"
    location: str  # the SQLite path or postgresql://user@host:port/db, never a password

    async def call(
        self, fn: Callable[Concatenate[Database, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    def connection(self) -> AbstractContextManager[Database]: ...

    @property
    def last_write_failure(self) -> WriteFailure | None:
        """The newest write of any connection that failed, until one succeeds (health)."""
        ...

    def close(self) -> None: ...


class SqliteStore:
    """The store on one SQLite file: every call on the trio thread, on one connection."""

    backend = "sqlite"

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.location = str(db.file)

    async def call(
        self, fn: Callable[Concatenate[Database, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(db, *args, **kwargs)` inline; a checkpoint before (cancellation) and after
        (scheduling), as every trio async function has."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return fn(self.db, *args, **kwargs)
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()

    @contextmanager
    def connection(self) -> Iterator[Database]:
        yield self.db

    @property
    def last_write_failure(self) -> WriteFailure | None:
        return self.db.last_write_failure

    def close(self) -> None:
        self.db.close()


class PostgresStore:
    """The store on a PostgreSQL server: a pool of connections, each call in a thread."""

    backend = "postgresql"

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], where: Location) -> None:
        self._pool = pool
        self._where = where
        self._writes = WriteLog()
        self._limiter = trio.CapacityLimiter(pool.max_size)
        self.location = str(where)

    @classmethod
    def open(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresStore:
        """Connect (raising `StoreUnavailable` with the server's reason when it does not
        answer), apply pending migrations, then open the pool."""
        where = location(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                migrate(PostgresDatabase(conn, where, WriteLog()))
        except psycopg.Error as exc:
            translate(exc, where.password)
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=pool_size,
            open=False,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=CONNECT_TIMEOUT,
            name="store",
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg_pool.PoolTimeout as exc:  # the server went away since the migration
            pool.close()
            raise _no_connection(where) from exc
        return cls(pool, where)

    async def call(
        self, fn: Callable[Concatenate[Database, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(db, *args, **kwargs)` in a worker thread on a pooled connection."""

        def run() -> T:
            with self.connection() as db:
                return fn(db, *args, **kwargs)

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """A pooled connection for the length of the block (blocking: not on the trio
        thread)."""
        try:
            with self._pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                yield PostgresDatabase(conn, self._where, self._writes)
        except psycopg_pool.PoolTimeout as exc:
            raise _no_connection(self._where) from exc

    @property
    def last_write_failure(self) -> WriteFailure | None:
        return self._writes.last

    def close(self) -> None:
        self._pool.close()


def _no_connection(where: Location) -> StoreUnavailable:
    return StoreUnavailable(
        f"no connection to {where} within {CONNECT_TIMEOUT:.0f} s", "PoolTimeout"
    )


def open_store(database_path: Path, database_url: str | None = None) -> Store:
    """PostgreSQL when a DATABASE_URL is set, else the SQLite file (created when missing);
    migrated either way. Blocking: from async code, `await trio.to_thread.run_sync(...)`."""
    if database_url:
        return PostgresStore.open(database_url)
    return SqliteStore(open_database(database_path))

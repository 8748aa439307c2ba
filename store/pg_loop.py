"""The suite's own PostgreSQL connection: one psycopg connection on the trio thread.

The actors call the store synchronously, as they do on SQLite: a statement on loopback takes
~30 µs, a commit ~0.2 ms, so a web turn (some 20 statements, 2 commits) costs ~1 ms of loop
time, what SQLite costs with synchronous=FULL (README, "Running on PostgreSQL"). Threads
(backups, long reads) use the pool of store/backends.py instead, never this connection.

The connection can drop (a server restart, `pg_terminate_backend`, a network cut): the call
that meets it raises `StoreUnavailable`, and so does every call after it, at once and without
touching the network, until `keep_connected` (the suite's `store` child on PostgreSQL) has
opened a new one in a worker thread and put it in place. The swap happens on the trio
thread, between two calls: never inside a transaction (rule: no await inside one). A
server that stops answering mid-statement is bounded by TCP keepalives and
`tcp_user_timeout`; a lock held by another process by `lock_timeout`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict

from .base import utc_now
from .errors import StoreUnavailable
from .postgres import Location, PostgresDatabase, WriteLog, location, migrate, translate

log = logging.getLogger("store.connection")

SECONDS = 1.0
CONNECT_TIMEOUT = 5  # seconds (libpq's connect_timeout is whole seconds)
LIVENESS_INTERVAL = 2 * SECONDS  # a `SELECT 1` (~30 µs) finds a connection dropped while idle
RETRY_INTERVAL = 1 * SECONDS  # between two failed reconnections
RESUME_CHECK = 1 * SECONDS  # an actor cut by a loss looks again at least this often
LOCK_TIMEOUT = "5s"  # as SQLite's busy timeout: a lock held longer is a stuck writer
STATEMENT_TIMEOUT = "15s"  # no statement of the suite's takes a fraction of that
# libpq keepalives and TCP_USER_TIMEOUT: a server gone silent is noticed in ~15 s, not hours.
CONNECTION_OPTIONS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # ms
}
APPLICATION_NAME = "ia-comercial"  # in pg_stat_activity, unless the URL names another


@dataclass
class ConnectionStatistics:
    """The suite's connection, for /health/detailed (`work.store`)."""

    connected: bool = True
    losses: int = 0  # times the connection was found lost
    reconnects: int = 0
    outlasted: int = 0  # actor runs cut by a loss and resumed in place (no restart counted)
    failed_reconnects: int = 0
    lost_at: str | None = None  # when it was last lost (UTC text)
    last_error: str | None = None  # why, without the password


def connect(url: str, purpose: str = "") -> psycopg.Connection[Any]:
    """A new connection for the trio thread (blocking: call it from a worker thread, or
    before the event loop serves anything). `purpose` is told in pg_stat_activity after the
    application's name (`ia-comercial notices`), so the suite's own connection stays the
    one named `ia-comercial` (or as the URL names it)."""
    where = location(url)
    named: dict[str, Any] = (
        {} if "application_name=" in url else {"application_name": APPLICATION_NAME}
    )
    if purpose:
        given = conninfo_to_dict(url).get("application_name") or APPLICATION_NAME
        named = {"application_name": f"{given} {purpose}"}
    try:
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **CONNECTION_OPTIONS, **named
        )
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        return conn
    except psycopg.Error as exc:
        translate(exc, where.password)


class LoopDatabase(PostgresDatabase):
    """`PostgresDatabase` on one connection that the suite replaces when it is lost."""

    def __init__(self, url: str, connection: psycopg.Connection[Any], where: Location) -> None:
        super().__init__(connection, where, WriteLog())
        self.url = url
        self.stats = ConnectionStatistics()
        self.lost = trio.Event()  # set when the connection is found broken
        self.back = trio.Event()  # set when a lost connection has been replaced

    @classmethod
    def open(cls, url: str) -> LoopDatabase:
        """Connect and migrate; `StoreUnavailable` (the server's reason, no password) when
        the server does not answer."""
        db = cls(url, connect(url), location(url))
        try:
            migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def is_connected(self) -> bool:
        return not (self.connection.broken or self.connection.closed)

    def replace(self, connection: psycopg.Connection[Any]) -> None:
        """Put a new connection in place of the lost one (on the trio thread)."""
        assert not self._depth, "never inside a transaction"
        old, self.connection = self.connection, connection
        old.close()
        self.lost = trio.Event()
        self.back.set()
        self.stats.connected = True
        self.stats.reconnects += 1

    @contextmanager
    def _translated(self) -> Iterator[None]:
        if not self.is_connected():
            raise StoreUnavailable(
                f"the connection to {self.where} was lost; reconnecting", "ConnectionLost"
            )
        try:
            yield
        except psycopg.Error as exc:
            if not self.is_connected():
                self._mark_lost(exc)
            translate(exc, self.where.password)

    def _mark_lost(self, exc: psycopg.Error) -> None:
        self.stats.connected = False
        self.stats.losses += 1
        if not self.lost.is_set():
            self.back = trio.Event()
        self.stats.lost_at = utc_now()
        self.stats.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        log.warning("store connection to %s lost (%s)", self.where, type(exc).__name__)
        self.lost.set()


async def keep_connected(
    db: LoopDatabase,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The `store` child on PostgreSQL: look at the connection every LIVENESS_INTERVAL (or
    at once when a call found it broken) and open a new one when it is lost."""
    task_status.started()
    while not stop.is_set():
        await _first_of(stop, db.lost, seconds=LIVENESS_INTERVAL)
        if stop.is_set():
            return
        if db.is_connected():
            try:
                db.scalar("SELECT 1")  # a drop while idle is found here, not by a visitor
            except StoreUnavailable:
                pass
        if not db.is_connected():
            await _reconnect(db)


async def _reconnect(db: LoopDatabase) -> None:
    try:
        connection = await trio.to_thread.run_sync(connect, db.url)
    except StoreUnavailable as exc:
        db.stats.failed_reconnects += 1
        db.stats.last_error = f"{exc.kind}: {exc}"
        log.warning("store: cannot reconnect to %s yet (%s)", db.where, exc)
        await trio.sleep(RETRY_INTERVAL)
        return
    db.replace(connection)
    log.info("store: reconnected to %s", db.where)


async def _first_of(*events: trio.Event, seconds: float) -> None:
    """Return when any of `events` is set, or after `seconds`."""
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for event in events:

                async def wait(event: trio.Event = event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait)


class _ActorMain(Protocol):
    def __call__(
        self, stop: trio.Event, /, *, task_status: trio.TaskStatus[None]
    ) -> Awaitable[None]: ...


def outlasting_losses(db: LoopDatabase, name: str, main: _ActorMain) -> _ActorMain:
    """`main` (an actor's entry point) run again in place, once the connection is back,
    when the connection was lost under it: a server restart is not the actor's fault, and
    counted as crashes it would exceed the supervisor's intensity within seconds and stop
    the suite. Anything else (a StoreUnavailable on a live connection: a lock timeout, a
    read-only server) is a crash as before."""

    async def run(stop: trio.Event, /, *, task_status: trio.TaskStatus[None]) -> None:
        status = task_status
        while True:
            losses = db.stats.losses
            cut = False
            try:
                await main(stop, task_status=status)
                return
            except* StoreUnavailable:
                if db.stats.losses == losses and db.is_connected():
                    raise
                cut = True
            if cut:
                db.stats.outlasted += 1
                status = trio.TASK_STATUS_IGNORED  # it said it was ready the first time
                log.warning("%s: the store connection was lost; resuming when it is back", name)
                while not db.is_connected() and not stop.is_set():
                    await _first_of(stop, db.back, seconds=RESUME_CHECK)
                if stop.is_set():
                    return

    return run

"""The store on SQLite: one apsw connection per process on the trio thread.

Rule: no await inside a transaction. Every method here is synchronous and takes
microseconds; long work (backup, VACUUM) opens its own connection in a worker thread.
Everything SQLite-specific lives here: pragmas, WAL, the `ia_fold` function, the migrations
runner (`PRAGMA user_version`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import monotonic
from typing import Any, NoReturn

import apsw

from .base import Params, Row, StoreStatistics, WriteFailure, utc_now
from .errors import ConstraintError, DataError, StoreError, StoreUnavailable
from .migrations import MIGRATIONS
from .text import fold

SECONDS_MS = 1000
BUSY_TIMEOUT_MS = 5 * SECONDS_MS
STATEMENT_CACHE = 1024
# The write probe waits this long for another writer's lock: writes here take microseconds,
# so a lock held longer is a stuck writer, and the probe must not stall the event loop.
WRITE_PROBE_BUSY_TIMEOUT_MS = 100
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes
BUSY_STEP, BUSY_STEP_MAX = 0.00002, 0.001  # seconds: the first wait for a lock, the longest
# apsw errors that say the file cannot be written now (unlike a constraint, a bug of ours).
WRITE_FAILURES: tuple[type[apsw.Error], ...] = (
    apsw.FullError,
    apsw.ReadOnlyError,
    apsw.IOError,
    apsw.BusyError,
    apsw.LockedError,
    apsw.CantOpenError,
    apsw.CorruptError,
    apsw.NotADBError,
)
# apsw errors that say a value was refused (too big, wrong type, out of range): the data's.
DATA_ERRORS: tuple[type[apsw.Error], ...] = (apsw.MismatchError, apsw.TooBigError, apsw.RangeError)


class SqliteDatabase:
    """The store on SQLite: a thin, typed face over one apsw connection."""

    backend = "sqlite"

    def __init__(self, connection: apsw.Connection, path: Path) -> None:
        self.connection = connection
        self.path: Path | None = path
        self.file = path
        self._depth = 0
        # The newest write that failed, until a write succeeds (for /health/detailed).
        self.last_write_failure: WriteFailure | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`with db.transaction():` commits on success and rolls back on any exception.

        Nested use joins the outer transaction (no savepoint): store functions that must be
        atomic open one, and a caller can group several of them into one commit. It begins
        IMMEDIATE: the write lock is taken (waiting out the busy timeout) before the first
        read, so another process committing meanwhile (`ia-comercial backup`, a second
        worker) cannot make the first write fail at once with "database is locked"."""
        if self._depth:
            yield
            return
        self._depth += 1
        try:
            self._write("BEGIN IMMEDIATE", ())
            try:
                yield
            except BaseException:  # what the body raised goes on as it is
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
            try:
                self._write("COMMIT", ())
            except StoreError:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
        except StoreUnavailable as exc:  # BEGIN, COMMIT, or a statement inside
            self.last_write_failure = self.last_write_failure or _write_failure(exc)
            raise
        else:
            self.last_write_failure = None
        finally:
            self._depth -= 1

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """`with db.savepoint():` inside a transaction: a part that may fail alone. On an
        exception its writes are undone and the exception goes on; the enclosing
        transaction keeps what came before and can still commit."""
        assert self._depth, "a savepoint lives inside a transaction"
        self.connection.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK TO SAVEPOINT part")
            self.connection.execute("RELEASE SAVEPOINT part")
            raise
        self.connection.execute("RELEASE SAVEPOINT part")

    # Writes note a failure of the file (full, read-only, locked) for /health/detailed; a
    # later write that succeeds outside a transaction, or a commit, clears it.

    def execute(self, sql: str, params: Params = ()) -> None:
        self._write(sql, params)

    def insert(self, sql: str, params: Params = ()) -> int:
        """Insert one row into a table with an `id` column; its new id (the statement gets
        `RETURNING id`, the same on every backend)."""
        new_id = self.returning(f"{sql} RETURNING id", params)
        assert new_id is not None, "an INSERT without ON CONFLICT writes its row"
        return int(new_id)

    def returning(self, sql: str, params: Params = ()) -> Any:
        """A write with its own RETURNING clause: the first value of the first row, None when
        it wrote nothing (ON CONFLICT DO NOTHING, an UPDATE that matched no row)."""
        cursor = self._write(sql, params)
        try:
            rows = cursor.fetchall()  # stepped to its end: the statement is done
        except apsw.Error as exc:  # a row after the first broke a constraint
            translate(exc)
        return rows[0][0] if rows else None

    def changes(self, sql: str, params: Params = ()) -> int:
        self._write(sql, params)
        return int(self.connection.changes())

    def _write(self, sql: str, params: Params) -> apsw.Cursor:
        try:
            cursor = self.connection.execute(sql, params)
        except WRITE_FAILURES as exc:
            self._write_failed(exc)
            translate(exc)
        except apsw.Error as exc:
            translate(exc)
        if not self._depth:
            self.last_write_failure = None
        return cursor

    def _write_failed(self, exc: apsw.Error) -> None:
        self.last_write_failure = _write_failure(exc)

    def probe_write(self) -> WriteFailure | None:
        """Prove that the file can be written now: take the write lock and rewrite one header
        field with its own value (one page into the WAL); the failure, if any. It leaves
        `last_write_failure` alone: that one is about the suite's real writes. Cheap, but for
        a health check every few seconds, not for every request."""
        self.connection.set_busy_handler(BusyWait(WRITE_PROBE_BUSY_TIMEOUT_MS))
        try:
            application_id = int(self.scalar("PRAGMA application_id"))
            with self.connection:
                self.connection.execute(f"PRAGMA application_id = {application_id}")
        except WRITE_FAILURES as exc:
            return _write_failure(exc)
        finally:
            self.connection.set_busy_handler(BusyWait(BUSY_TIMEOUT_MS))
        return None

    def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cursor = self.connection.execute(sql, params)
            try:
                names = [d[0] for d in cursor.get_description()]
            except apsw.ExecutionCompleteError:  # no rows at all
                return []
            return [dict(zip(names, row, strict=True)) for row in cursor]
        except apsw.Error as exc:
            translate(exc)

    def scalar(self, sql: str, params: Params = ()) -> Any:
        try:
            row = self.connection.execute(sql, params).fetchone()
        except apsw.Error as exc:
            translate(exc)
        return None if row is None else row[0]

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row as a tuple (for a few columns unpacked in a loop)."""
        try:
            return list(self.connection.execute(sql, params))
        except apsw.Error as exc:
            translate(exc)

    def schema_version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))

    def statistics(self) -> StoreStatistics:
        wal = Path(f"{self.file}-wal")
        return StoreStatistics(
            path=str(self.file),
            schema_version=self.schema_version(),
            size_bytes=self.file.stat().st_size if self.file.exists() else 0,
            wal_bytes=wal.stat().st_size if wal.exists() else 0,
        )

    def close(self) -> None:
        self.connection.close()


def translate(exc: apsw.Error) -> NoReturn:
    """Raise the store's error for apsw's (store/errors.py, the same as on PostgreSQL);
    `kind` keeps apsw's name, and apsw's error stays the cause."""
    kind, message = type(exc).__name__, str(exc)
    if isinstance(exc, apsw.ConstraintError):
        raise ConstraintError(message, kind) from exc
    if isinstance(exc, WRITE_FAILURES):
        raise StoreUnavailable(message, kind) from exc
    if isinstance(exc, DATA_ERRORS):
        raise DataError(message, kind) from exc
    raise StoreError(message, kind) from exc


def _write_failure(exc: apsw.Error | StoreError) -> WriteFailure:
    kind = exc.kind if isinstance(exc, StoreError) else type(exc).__name__
    return WriteFailure(kind, str(exc)[:200], utc_now(), monotonic())


def open_database(path: Path) -> SqliteDatabase:
    """Open (creating the folder), set the pragmas and apply pending migrations; a file
    that cannot be opened or migrated raises a `StoreError` (an `OSError` for the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open(path)
    except apsw.Error as exc:
        translate(exc)


class BusyWait:
    """Waits for another process's lock on the file (workers sharing it: `WORKERS=N`) in
    short steps, 20 µs doubling to 1 ms, for at most `timeout_ms`. SQLite's own busy timeout
    sleeps 1 ms, then 2, 5, 10 ms...: two workers writing one file, each waited whole
    milliseconds, on the event loop, for a lock the other held some 100 µs (measured:
    two workers answered no more chats than one)."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout = timeout_ms / 1000
        self.started = 0.0

    def __call__(self, prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            self.started = now
        elif now - self.started >= self.timeout:
            return False  # SQLITE_BUSY, as a busy timeout would say
        time.sleep(min(BUSY_STEP * 2 ** min(prior_calls, 6), BUSY_STEP_MAX))
        return True


def _open(path: Path) -> SqliteDatabase:
    # Every statement the suite runs stays prepared (apsw's default keeps 100, fewer than
    # the suite's distinct statements: re-preparing cost up to 0.1 ms a query).
    connection = apsw.Connection(str(path), statementcachesize=STATEMENT_CACHE)
    connection.set_busy_handler(BusyWait(BUSY_TIMEOUT_MS))
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # A WAL started over (store/maintenance.py) is cut back to this size.
    connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    connection.execute("PRAGMA foreign_keys=ON")
    # Checkpoints run off the event loop (store/maintenance.py), not inside a commit.
    connection.wal_autocheckpoint(0)
    # fold(): accent- and case-blind search in SQL (SQLite's lower() knows only ASCII).
    connection.create_scalar_function("ia_fold", _sql_fold, 1, deterministic=True)
    db = SqliteDatabase(connection, path)
    migrate(db)
    return db


def _sql_fold(*values: apsw.SQLiteValue) -> apsw.SQLiteValue:
    value = values[0]
    return fold(value) if isinstance(value, str) else value


def migrate(db: SqliteDatabase) -> int:
    """Apply every migration above `PRAGMA user_version`, each in its own transaction."""
    current = db.schema_version()
    if current >= len(MIGRATIONS):
        return current
    # Off while tables are rebuilt (SQLite's documented way to change a table's definition;
    # a no-op inside a transaction, so set here), then every reference is checked.
    db.connection.execute("PRAGMA foreign_keys = OFF")
    try:
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            with db.transaction():
                before = len(db.connection.execute("PRAGMA foreign_key_check").fetchall())
                db.connection.execute(script)
                broken = db.connection.execute("PRAGMA foreign_key_check").fetchall()
                if len(broken) > before:
                    raise apsw.ConstraintError(
                        f"migration {version} broke references: {broken[:3]}"
                    )
                db.execute(f"PRAGMA user_version = {version}")
    finally:
        db.connection.execute("PRAGMA foreign_keys = ON")
    return db.schema_version()

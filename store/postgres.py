"""The store on PostgreSQL: one psycopg 3 connection per `PostgresDatabase`, lent by a pool
(store/backends.py) to one worker thread at a time.

Everything PostgreSQL-specific lives here and in store/pg_schema.py: the placeholder
conversion, the translation of psycopg's errors, the migrations runner (`schema_version`).
The store's SQL is written once with `?` placeholders; each distinct statement is converted
to psycopg's `%s` once and cached. Connections run in autocommit, as SQLite does outside a
transaction; `transaction()` opens one explicitly."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from time import monotonic
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import psycopg.errors

from .base import Params, Row, StoreStatistics, WriteFailure, utc_now
from .errors import ConstraintError, DataError, StoreError, StoreUnavailable
from .migrations import MIGRATIONS
from .pg_schema import POSTGRES_MIGRATIONS

_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@")
STATEMENTS_CACHED = 4096  # distinct statements converted once (the store has a few hundred)
WRITE_PROBE_LOCK_TIMEOUT = "100ms"  # as SQLite's probe: a lock held longer is a stuck writer
MIGRATION_LOCK = 0x1A_C0_11E5  # pg_advisory_xact_lock key: two processes migrate one at a time
# psycopg errors that say the server cannot write now (unlike a constraint, a bug of ours).
UNAVAILABLE: tuple[type[psycopg.Error], ...] = (
    psycopg.OperationalError,  # connection lost, admin shutdown, disk full, lock timeout
    psycopg.errors.ReadOnlySqlTransaction,  # a standby, or default_transaction_read_only
    psycopg.errors.InsufficientPrivilege,
)


@dataclass(frozen=True)
class Location:
    """Where a DATABASE_URL points, without its password (for messages and health)."""

    host: str
    port: int
    database: str
    user: str | None
    password: str | None = field(repr=False)  # kept out of a logged or printed Location

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"postgresql://{who}{self.host}:{self.port}/{self.database}"


def location(url: str) -> Location:
    """Parse a `postgresql://user:password@host:port/database` URL."""
    parts = urlsplit(url)
    return Location(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        database=unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres",
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def url_without_password(url: str) -> str:
    """The URL as given, but for its password (for a program's command line)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}{parts.hostname}{port}"))


def redact(text: str, secret: str | None) -> str:
    """`text` with the password replaced by ***: as typed, URL-encoded, and whatever sits
    between `user:` and `@` in a postgresql:// URL."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    if secret:
        for form in (secret, quote(secret, safe="")):
            text = text.replace(form, "***")
    return text


@lru_cache(maxsize=STATEMENTS_CACHED)
def to_pyformat(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, and a literal `%` doubled (psycopg reads `%`
    anywhere in a statement with parameters). A `?` inside a quoted string or identifier is
    left alone."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


class WriteLog:
    """The newest write that failed, shared by every connection of one pool."""

    def __init__(self) -> None:
        self.last: WriteFailure | None = None


class PostgresDatabase:
    """The store on PostgreSQL: the `Database` interface over one psycopg connection."""

    backend = "postgresql"
    path: Path | None = None

    def __init__(
        self, connection: psycopg.Connection[Any], where: Location, writes: WriteLog
    ) -> None:
        self.connection = connection
        self.where = where
        self._writes = writes
        self._depth = 0

    @property
    def last_write_failure(self) -> WriteFailure | None:
        return self._writes.last

    @last_write_failure.setter
    def last_write_failure(self, value: WriteFailure | None) -> None:
        self._writes.last = value

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`with db.transaction():` commits on success and rolls back on any exception;
        nested use joins the outer transaction (no savepoint), as on SQLite. PostgreSQL's
        default isolation (read committed): rows another process commits meanwhile may be
        seen by the next statement; the unique indexes keep every edge idempotent."""
        if self._depth:
            yield
            return
        self._depth += 1
        try:
            with self._translated(), self.connection.transaction():
                yield
        except StoreUnavailable as exc:
            self._write_failed(exc)
            raise
        else:
            self.last_write_failure = None
        finally:
            self._depth -= 1

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """As on SQLite: inside a transaction, a part whose failure undoes only its own
        writes (psycopg's nested transaction is a SAVEPOINT; it also clears the aborted
        state a failed statement leaves)."""
        assert self._depth, "a savepoint lives inside a transaction"
        with self._translated(), self.connection.transaction():
            yield

    def execute(self, sql: str, params: Params = ()) -> None:
        self._write(sql, params)

    def insert(self, sql: str, params: Params = ()) -> int:
        new_id = self.returning(f"{sql} RETURNING id", params)
        assert new_id is not None, "an INSERT without ON CONFLICT writes its row"
        return int(new_id)

    def returning(self, sql: str, params: Params = ()) -> Any:
        row = self._write(sql, params).fetchone()
        return None if row is None else row[0]

    def changes(self, sql: str, params: Params = ()) -> int:
        return max(self._write(sql, params).rowcount, 0)

    def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._run(sql, params)
        if cursor.description is None:
            return []
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        cursor = self._run(sql, params)
        return [] if cursor.description is None else list(cursor.fetchall())

    def scalar(self, sql: str, params: Params = ()) -> Any:
        cursor = self._run(sql, params)
        row = None if cursor.description is None else cursor.fetchone()
        return None if row is None else row[0]

    def schema_version(self) -> int:
        if self.scalar("SELECT to_regclass('schema_version')") is None:
            return 0
        return int(self.scalar("SELECT version FROM schema_version") or 0)

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            path=f"{self.where.host}:{self.where.port}/{self.where.database}",
            schema_version=self.schema_version(),
            size_bytes=int(self.scalar("SELECT pg_database_size(current_database())")),
            wal_bytes=0,
        )

    def probe_write(self) -> WriteFailure | None:
        """Rewrite the schema version with its own value in a transaction whose locks are
        given up after 100 ms; the failure, if any."""
        try:
            with self._translated(), self.connection.transaction():
                self.connection.execute(f"SET LOCAL lock_timeout = '{WRITE_PROBE_LOCK_TIMEOUT}'")
                self.connection.execute("UPDATE schema_version SET version = version")
        except StoreUnavailable as exc:
            return _write_failure(exc)
        return None

    def run_script(self, sql: str) -> None:
        """Statements as written, without parameters (no placeholder conversion): DDL."""
        with self._translated():
            self.connection.execute(sql)

    def close(self) -> None:
        self.connection.close()

    def _write(self, sql: str, params: Params) -> psycopg.Cursor[Any]:
        try:
            cursor = self._run(sql, params)
        except StoreUnavailable as exc:
            self._write_failed(exc)
            raise
        if not self._depth:
            self.last_write_failure = None
        return cursor

    def _run(self, sql: str, params: Params) -> psycopg.Cursor[Any]:
        if not isinstance(params, Sequence):
            raise TypeError("the PostgreSQL store takes ? placeholders with a sequence")
        with self._translated():
            return self.connection.execute(to_pyformat(sql), list(params))

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            translate(exc, self.where.password)

    def _write_failed(self, exc: StoreError) -> None:
        self.last_write_failure = _write_failure(exc)


def translate(exc: psycopg.Error, password: str | None) -> NoReturn:
    """Raise our error for psycopg's (its message without the password)."""
    message = redact(" ".join(str(exc).split()), password)  # one line: hints come on a second
    kind = type(exc).__name__
    if isinstance(exc, psycopg.IntegrityError):
        raise ConstraintError(message, kind) from exc
    if isinstance(exc, psycopg.DataError):
        raise DataError(message, kind) from exc
    if isinstance(exc, UNAVAILABLE):
        raise StoreUnavailable(message, kind) from exc
    raise StoreError(message, kind) from exc


def _write_failure(exc: StoreError) -> WriteFailure:
    return WriteFailure(exc.kind, str(exc)[:200], utc_now(), monotonic())


def reach(url: str, timeout: int) -> int:
    """Connect once and read the schema version (0: an empty database, migrated when the
    store opens); `StoreUnavailable` with the server's reason when it does not answer."""
    where = location(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=timeout) as conn:
            return PostgresDatabase(conn, where, WriteLog()).schema_version()
    except psycopg.Error as exc:
        translate(exc, where.password)


def migrate(db: PostgresDatabase) -> int:
    """Bring the schema to the newest migration, in one transaction (PostgreSQL's DDL is
    transactional) under an advisory lock, so two processes starting at once migrate once.

    Numbers are SQLite's: the baseline creates the schema SQLite has after that migration,
    and every later SQLite migration has its PostgreSQL twin in store/pg_schema.py."""
    target = len(MIGRATIONS)
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        if db.scalar("SELECT count(*) FROM schema_version") == 0:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = db.schema_version()
        for version in sorted(v for v in POSTGRES_MIGRATIONS if current < v <= target):
            db.run_script(POSTGRES_MIGRATIONS[version])
            db.execute("UPDATE schema_version SET version = ?", (version,))
        reached = db.schema_version()
    if reached < target:
        raise StoreError(
            f"the PostgreSQL schema is at version {reached}, the store needs {target}:"
            f" migration {reached + 1} has no PostgreSQL twin in store/pg_schema.py",
            "MissingMigration",
        )
    return reached

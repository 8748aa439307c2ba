"""What every backend of the store shares: the `Database` interface the table-family modules
are written against, the time format, and the records health reads (statistics, a failed
write). Nothing here knows SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

Row = dict[str, Any]
# `?` placeholders with a sequence: the one form both backends take (PostgreSQL's converts
# them to psycopg's `%s`, store/postgres.py). Named parameters work on SQLite only.
Params = Sequence[Any] | Mapping[str, Any]


def utc_now() -> str:
    """Timestamps are ISO-8601 UTC text with milliseconds: sortable and portable."""
    return utc_after(0)


def utc_after(seconds: float) -> str:
    """The timestamp `seconds` from now (a retry time)."""
    return to_text(datetime.now(UTC) + timedelta(seconds=seconds))


def to_text(at: datetime) -> str:
    """An aware datetime as the store writes time: ISO-8601 UTC with milliseconds and Z."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_text(value: str) -> datetime:
    """A stored timestamp back as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class StoreStatistics:
    """`path`: the SQLite file, or PostgreSQL's `host:port/database` (never a password);
    `wal_bytes` is 0 on PostgreSQL (the server manages its WAL)."""

    path: str
    schema_version: int
    size_bytes: int
    wal_bytes: int


@dataclass(frozen=True)
class WriteFailure:
    """A write that failed: the driver error's type and message, when (UTC text and
    `time.monotonic()`)."""

    error: str
    message: str
    at: str
    clock: float


class Database(Protocol):
    """One connection to the store, used by one thread at a time. Every method is
    synchronous. Writes outside `transaction()` commit at once; inside, they commit together
    or not at all. A write the store cannot do now (disk full, read-only, server gone) is
    kept in `last_write_failure` until a write succeeds."""

    backend: str  # "sqlite" | "postgresql"
    path: Path | None  # the SQLite file; None on PostgreSQL
    last_write_failure: WriteFailure | None

    def transaction(self) -> AbstractContextManager[None]:
        """Commit on success, roll back on any exception; nested use joins the outer one."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a transaction: a part whose exception undoes only its own writes."""
        ...

    def execute(self, sql: str, params: Params = ()) -> None: ...

    def insert(self, sql: str, params: Params = ()) -> int:
        """An INSERT of one row into a table with an `id` column: the new id."""
        ...

    def returning(self, sql: str, params: Params = ()) -> Any:
        """A write with its own RETURNING: the first value, None when nothing was written."""
        ...

    def changes(self, sql: str, params: Params = ()) -> int:
        """A write: how many rows it changed."""
        ...

    def one(self, sql: str, params: Params = ()) -> Row | None: ...

    def all(self, sql: str, params: Params = ()) -> list[Row]: ...

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    def scalar(self, sql: str, params: Params = ()) -> Any: ...

    def schema_version(self) -> int:
        """The number of the last migration applied (the same numbers on both backends)."""
        ...

    def statistics(self) -> StoreStatistics: ...

    def probe_write(self) -> WriteFailure | None:
        """Prove that the store can be written now, without changing anything (for a health
        check every few seconds); the failure, if any. Leaves `last_write_failure` alone."""
        ...

    def close(self) -> None: ...

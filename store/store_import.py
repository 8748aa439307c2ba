"""Move a SQLite store of ours to PostgreSQL: `ia-comercial import-store PATH`.

The SQLite file (any schema version of ours; it may be in use) is copied with `VACUUM INTO`
to a scratch file, and the copy, never the original, is migrated to the newest schema. Its
tables then go into the PostgreSQL store at DATABASE_URL in one transaction, with their ids
(identity columns are BY DEFAULT for this), parents before children, each table in one
`COPY`; every identity sequence is then moved past the largest id, so the suite's next rows
never collide with imported ones. The target must be empty (a store just migrated): the
tables are locked first, so nothing writes between the check and the copy. Anything wrong
rolls everything back."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import apsw
import psycopg
from psycopg import sql

from .errors import StoreError
from .migrations import DERIVED_TABLES, MIGRATIONS
from .postgres import PostgresDatabase, translate
from .sqlite import SqliteDatabase, open_database

OURS = {"leads", "conversations", "messages"}  # tables every schema version of ours has


class StoreImportError(Exception):
    """The source or the target cannot be used; the message says why, for a person."""


@dataclass
class StoreImportReport:
    source: Path
    from_version: int
    to_version: int
    rows: dict[str, int] = field(default_factory=dict)  # table: rows, in copy order
    dry_run: bool = False

    def lines(self) -> list[str]:
        migrated = (
            f"schema version {self.from_version}"
            if self.from_version == self.to_version
            else f"schema version {self.from_version}, migrated to {self.to_version} on a copy"
        )
        verb = "would be copied" if self.dry_run else "copied"
        total = sum(self.rows.values())
        return [
            f"source {self.source}: {migrated}",
            *(f"{table}: {count} rows" for table, count in self.rows.items()),
            f"{total} rows in {len(self.rows)} tables {verb}",
        ]


def import_store(target: PostgresDatabase, source: Path, *, dry_run: bool) -> StoreImportReport:
    """Copy the SQLite store at `source` into the empty PostgreSQL store `target`."""
    with _migrated_copy(source) as (copy, from_version):
        order = _copy_order(copy)
        report = StoreImportReport(source, from_version, copy.schema_version(), dry_run=dry_run)
        report.rows = {t: int(copy.scalar(f'SELECT count(*) FROM "{t}"')) for t in order}
        with target.transaction():
            _check_target(target, order)
            if dry_run:
                return report
            for table in order:
                _copy_table(copy, target, table)
            _reset_identities(target, order)
    return report


@contextmanager
def _migrated_copy(source: Path) -> Iterator[tuple[SqliteDatabase, int]]:
    """A migrated scratch copy of `source`, and the schema version `source` was at."""
    if not source.is_file():
        raise StoreImportError(f"{source}: no such file")
    version = _our_version(source)
    with tempfile.TemporaryDirectory(prefix="ia-comercial-import-") as scratch:
        path = Path(scratch) / "store.db"
        try:
            connection = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                connection.execute("VACUUM INTO ?", (str(path),))
            finally:
                connection.close()
            copy = open_database(path)
        except (apsw.Error, StoreError) as exc:
            raise StoreImportError(f"{source}: cannot be copied or migrated ({exc})") from None
        try:
            yield copy, version
        finally:
            copy.close()


def _our_version(source: Path) -> int:
    """The schema version of a SQLite store of ours; refuses anything else."""
    try:
        connection = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            row = connection.execute("PRAGMA user_version").fetchone()
            version = int(row[0]) if row else 0
            tables = {
                str(name)
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        finally:
            connection.close()
    except apsw.Error as exc:
        raise StoreImportError(
            f"{source}: not a readable SQLite database ({type(exc).__name__})"
        ) from None
    if version == 0 or not OURS <= tables:
        raise StoreImportError(
            f"{source}: not a store of ia-comercial (for the original system's database,"
            " use import-legacy)"
        )
    if version > len(MIGRATIONS):
        raise StoreImportError(
            f"{source}: schema version {version} is newer than this program's"
            f" ({len(MIGRATIONS)}); upgrade ia-comercial first"
        )
    return version


def _copy_order(copy: SqliteDatabase) -> list[str]:
    """Every table but the derived ones (kept by the target's triggers as the rows come),
    parents before children (by their foreign keys)."""
    tables = [
        str(name)
        for (name,) in copy.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
        if name not in DERIVED_TABLES
    ]
    graph = {
        table: {str(row[2]) for row in copy.rows(f'PRAGMA foreign_key_list("{table}")')} - {table}
        for table in tables
    }
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # none in our schema; a table's own references are fine
        raise StoreImportError(f"foreign keys in a cycle: {exc.args[1]}") from None


def _columns(copy: SqliteDatabase, table: str) -> list[str]:
    return [str(row[1]) for row in copy.rows(f'PRAGMA table_info("{table}")')]


def _check_target(target: PostgresDatabase, order: list[str]) -> None:
    """Lock every table of the target (no one writes until the commit) and refuse one that
    is not the store's schema or holds rows already."""
    present = {
        str(name)
        for (name,) in target.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    missing = [t for t in order if t not in present]
    if missing:
        raise StoreImportError(f"{target.where}: tables missing: {', '.join(missing)}")
    names = sql.SQL(", ").join(sql.Identifier(t) for t in order)
    target.connection.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(names))
    held = {t: int(target.scalar(f'SELECT count(*) FROM "{t}"')) for t in order}
    used = [f"{t} ({n} rows)" for t, n in held.items() if n]
    if used:
        raise StoreImportError(
            f"{target.where} is not empty: {', '.join(used)}; import-store copies into a new,"
            " empty store only (nothing was written)"
        )


def _copy_table(copy: SqliteDatabase, target: PostgresDatabase, table: str) -> None:
    """One table in one COPY, in id order (the foreign keys are checked at its end)."""
    columns = _columns(copy, table)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    names = ", ".join(f'"{c}"' for c in columns)
    order = "id" if "id" in columns else "rowid"
    try:
        with target.connection.cursor() as cursor, cursor.copy(statement) as out:
            for row in copy.connection.execute(f'SELECT {names} FROM "{table}" ORDER BY {order}'):
                out.write_row(row)
    except psycopg.Error as exc:
        translate(exc, target.where.password)


def _reset_identities(target: PostgresDatabase, order: list[str]) -> None:
    """Each identity sequence past the largest id imported (or back to 1 for an empty
    table), so the suite's next insert gets a new id."""
    for table, column in target.rows(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ):
        if table not in order:
            continue
        target.execute(
            f'SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max("{column}"), 1),'
            f' max("{column}") IS NOT NULL) FROM "{table}"',
            (f'"{table}"', column),
        )

"""SQLite's and PostgreSQL's schemas cannot drift apart: the same tables, columns (with
their kind of value and whether they may be empty) and indexes. A SQLite migration merged
without its PostgreSQL twin (store/pg_schema.py) fails here."""

from __future__ import annotations

from pathlib import Path

from store.db import Database
from store.migrations import MIGRATIONS
from store.pg_schema import POSTGRES_MIGRATIONS
from tests.conftest import open_test_store

Schema = dict[str, dict[str, tuple[str, bool]]]
PG_KINDS = {"bigint": "integer", "text": "text"}


def sqlite_schema(db: Database) -> tuple[Schema, set[str]]:
    tables: Schema = {}
    for (name,) in db.rows(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        tables[name] = {
            str(column): (str(kind).lower(), bool(notnull or pk))
            for _cid, column, kind, notnull, _default, pk in db.rows(f"PRAGMA table_info({name})")
        }
    indexes = {
        str(n)
        for (n,) in db.rows(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    return tables, indexes


def postgres_schema(db: Database) -> tuple[Schema, set[str]]:
    tables: Schema = {}
    for table, column, kind, nullable in db.rows(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name != 'schema_version'"
    ):
        tables.setdefault(table, {})[column] = (PG_KINDS.get(kind, kind), nullable == "NO")
    indexes = {
        str(n)
        for (n,) in db.rows(
            # Not the indexes behind PRIMARY KEY and UNIQUE (SQLite's autoindexes, left out).
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint"
            "   WHERE connamespace = current_schema()::regnamespace)"
        )
    }
    return tables, indexes


def test_every_sqlite_migration_has_a_postgresql_twin() -> None:
    assert max(POSTGRES_MIGRATIONS) == len(MIGRATIONS)


def test_both_backends_have_the_same_tables_columns_and_indexes(tmp_path: Path) -> None:
    with open_test_store("sqlite", tmp_path) as lite, lite.connection() as db:
        sqlite_tables, sqlite_indexes = sqlite_schema(db)
    with open_test_store("postgresql", tmp_path) as pg, pg.connection() as db:
        pg_tables, pg_indexes = postgres_schema(db)
    assert sorted(pg_tables) == sorted(sqlite_tables)
    for table, columns in sqlite_tables.items():
        assert pg_tables[table] == columns, table
    assert pg_indexes == sqlite_indexes

"""SQLite's and PostgreSQL's schemas cannot drift apart: the same tables, columns (with
their kind of value and whether they may be empty), indexes, unique keys (their columns,
and whether partial) and foreign keys (with what a delete does). A SQLite migration merged
without its PostgreSQL twin (store/pg_schema.py) fails here."""

from __future__ import annotations

from pathlib import Path

from store.db import Database
from store.migrations import DERIVED_TABLES, MIGRATIONS, SEARCH_TABLES
from store.pg_schema import POSTGRES_MIGRATIONS
from tests.conftest import open_test_store

Schema = dict[str, dict[str, tuple[str, bool]]]
# The search index differs by design (store/search.py): FTS5 tables on SQLite, GIN indexes
# on PostgreSQL; each is checked to be there, and nothing else may differ.
POSTGRES_SEARCH_INDEXES = {"leads_search", "messages_search"}
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


Keys = set[tuple[str, tuple[str, ...], bool]]  # table, columns, partial
Refs = set[tuple[str, str, str, str]]  # table, column, referenced table, on delete
PG_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL"}


def sqlite_keys(db: Database, tables: Schema) -> tuple[Keys, Refs]:
    keys: Keys = set()
    refs: Refs = set()
    for table in tables:
        for _seq, name, unique, origin, partial in db.rows(f"PRAGMA index_list({table})"):
            if unique and origin != "pk":
                columns = tuple(str(c) for _n, _cid, c in db.rows(f"PRAGMA index_info({name})"))
                keys.add((table, columns, bool(partial)))
        for row in db.rows(f"PRAGMA foreign_key_list({table})"):
            refs.add((table, str(row[3]), str(row[2]), str(row[6])))
    return keys, refs


def postgres_keys(db: Database) -> tuple[Keys, Refs]:
    keys = {
        (str(table), tuple(columns), bool(partial))
        for table, columns, partial in db.rows(
            "SELECT t.relname, (SELECT array_agg(a.attname ORDER BY k.n)"
            "   FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
            "   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),"
            " i.indpred IS NOT NULL"
            " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
            " WHERE t.relnamespace = current_schema()::regnamespace"
            " AND i.indisunique AND NOT i.indisprimary"
        )
    }
    refs = {
        (str(table), str(column), str(target), PG_ON_DELETE[str(rule)])
        for table, column, target, rule in db.rows(
            "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text,"
            " c.confdeltype FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
            " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
        )
    }
    return keys, refs


def test_every_sqlite_migration_has_a_postgresql_twin() -> None:
    assert max(POSTGRES_MIGRATIONS) == len(MIGRATIONS)


def test_both_backends_have_the_same_tables_columns_and_indexes(tmp_path: Path) -> None:
    with open_test_store("sqlite", tmp_path) as lite, lite.connection() as db:
        sqlite_tables, sqlite_indexes = sqlite_schema(db)
        sqlite_unique, sqlite_refs = sqlite_keys(db, sqlite_tables)
    with open_test_store("postgresql", tmp_path) as pg, pg.connection() as db:
        pg_tables, pg_indexes = postgres_schema(db)
        pg_unique, pg_refs = postgres_keys(db)
    fts = {t for t in sqlite_tables if t in DERIVED_TABLES and t.startswith(SEARCH_TABLES)}
    assert set(SEARCH_TABLES) <= fts and POSTGRES_SEARCH_INDEXES <= pg_indexes
    sqlite_tables = {t: c for t, c in sqlite_tables.items() if t not in fts}
    pg_indexes -= POSTGRES_SEARCH_INDEXES
    assert sorted(pg_tables) == sorted(sqlite_tables)
    for table, columns in sqlite_tables.items():
        assert pg_tables[table] == columns, table
    assert pg_indexes == sqlite_indexes
    assert sqlite_unique and pg_unique == sqlite_unique
    assert sqlite_refs and pg_refs == sqlite_refs

"""The store's handle: `Database`, one connection, with two backends behind it.

Table-family modules (`conversations`, `messages`, `leads`...) are synchronous functions
taking a `Database` and work unchanged on either backend:

- SQLite (`store/sqlite.py`, the default): one apsw connection on the trio thread.
- PostgreSQL (`store/postgres.py`, `DATABASE_URL=postgresql://...`): a psycopg connection;
  the suite's own on the trio thread (`store/pg_loop.py`, reopened when lost), or one lent
  by a pool to a worker thread (`store/backends.py`: the CLI, backups, long reads).

The actors call the suite's `Database` directly, on either backend; threads reach the
store through `store.backends.Store.call(fn, *args)` (see there).
Rule: no await inside a transaction. The SQL is written once, in the dialect both share
(`?` placeholders, RETURNING, ON CONFLICT, count(*) FILTER); what is specific to one
backend (pragmas, WAL, backup, the migrations runner, SQL functions) stays in its module.
"""

from __future__ import annotations

from .base import Database, WriteFailure, from_text, to_text, utc_after, utc_now
from .sqlite import BUSY_TIMEOUT_MS, migrate, open_database

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Database",
    "WriteFailure",
    "from_text",
    "migrate",
    "open_database",
    "to_text",
    "utc_after",
    "utc_now",
]

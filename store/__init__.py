"""The store, the suite's source of truth: SQLite through apsw (the default) or PostgreSQL
through psycopg (`DATABASE_URL`), behind one interface.

Actors call the functions of the table-family modules (`conversations`, `messages`, `leads`)
and never write SQL of their own; those functions take a `Database` (store/db.py) and run
unchanged on either backend. The suite's actors call them on its one connection, on the
trio thread (on PostgreSQL: store/pg_loop.py); threads use `Store.call` (store/backends.py).
What is specific to one backend lives in its module: store/sqlite.py, store/postgres.py,
store/pg_schema.py, store/pg_loop.py, store/pg_backups.py and store/store_import.py.
"""

from .db import Database, open_database

__all__ = ["Database", "open_database"]

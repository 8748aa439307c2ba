"""The store, the suite's source of truth: SQLite through apsw (the default) or PostgreSQL
through psycopg (`DATABASE_URL`), behind one interface.

Actors call the functions of the table-family modules (`conversations`, `messages`, `leads`)
and never write SQL of their own; those functions take a `Database` (store/db.py) and run
unchanged on either backend. Async code reaches them with `Store.call` (store/backends.py).
What is specific to one backend lives in its module: store/sqlite.py, store/postgres.py and
store/pg_schema.py.
"""

from .db import Database, open_database

__all__ = ["Database", "open_database"]

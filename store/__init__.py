"""The store: SQLite through apsw, the suite's source of truth.

Actors call the functions of the table-family modules (`conversations`, `messages`, `leads`)
and never write SQL of their own. Everything SQLite-specific (pragmas, migrations runner,
backup later) lives in `db.py`, so a PostgreSQL implementation can follow behind the same
functions.
"""

from .db import Database, open_database

__all__ = ["Database", "open_database"]

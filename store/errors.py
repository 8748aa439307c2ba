"""Errors the PostgreSQL store raises, translated from psycopg's at the boundary.

StoreError              a statement failed (a bug of ours: bad SQL, a wrong type)
├── ConstraintError     the data broke a constraint (unique, check, foreign key)
└── StoreUnavailable    the server cannot do it now (unreachable, shut down, disk full,
                        read-only, a lock not granted in time): a write failure for
                        /health/detailed

The SQLite store raises apsw's errors as it always has (`apsw.ConstraintError`,
`apsw.BusyError`...). Messages never hold the DATABASE_URL password.
"""

from __future__ import annotations


class StoreError(Exception):
    """A statement failed on the PostgreSQL store; `kind` is psycopg's class name."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ConstraintError(StoreError):
    """A unique, check or foreign-key constraint refused the write."""


class StoreUnavailable(StoreError):
    """The server cannot be reached or cannot write now."""

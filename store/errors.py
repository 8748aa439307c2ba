"""Errors the store raises on either backend, translated at its boundary from apsw's
(store/sqlite.py) and psycopg's (store/postgres.py), so callers catch these only.

StoreError              a statement failed (a bug of ours: bad SQL)
├── ConstraintError     the data broke a constraint (unique, check, foreign key)
├── DataError           a value was refused (too big, a wrong type, out of range)
└── StoreUnavailable    the store cannot do it now (file or server: unreachable, locked,
                        busy, disk full, read-only, a lock not granted in time): a write
                        failure for /health/detailed

`kind` is the driver's class name (`BusyError`, `UniqueViolation`...); the driver's error is
the cause. Messages never hold the DATABASE_URL password.
"""

from __future__ import annotations


class StoreError(Exception):
    """A statement failed on the store; `kind` is the driver's class name."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ConstraintError(StoreError):
    """A unique, check or foreign-key constraint refused the write."""


class DataError(StoreError):
    """A value the store refuses: too big, of a type the column refuses, out of range."""


class StoreUnavailable(StoreError):
    """The server cannot be reached or cannot write now."""

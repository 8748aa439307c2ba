"""The leads as CSV, written row by row by a process of its own (issue 17):

    python -m store.lead_csv  < {"database_path": ..., "database_url": ..., "filter": {...}}

The ingress starts it for `/api/leads/export.csv` and streams what it writes on stdout as
the response body: the rows are read on a read-only connection of the process's own
(SQLite: the file, beside the suite's writer in WAL; PostgreSQL: a server-side cursor) and
turned into CSV by its own interpreter, so the suite's event loop only passes chunks on and
neither its GIL nor its memory grows with the number of leads. The request (with the
search text, which may name a person) comes on stdin, never the command line; a failure is
one line on stderr naming the error's kind, never a row."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from .lead_reports import LeadFilter, export_rows

CSV_COLUMNS = (
    ("id", "id"),
    ("nombre", "name"),
    ("telefono", "phone"),
    ("email", "email"),
    ("servicio", "service"),
    ("comuna", "area"),
    ("urgencia", "urgency"),
    ("presupuesto", "budget"),
    ("estado", "classification"),
    ("puntaje", "score"),
    ("razones", "reasons"),
    ("seguimiento", "status"),
    ("contactado", "contacted"),
    ("notas", "notes"),
    ("canal", "channel"),
    ("creado", "created_at"),
    ("actualizado", "updated_at"),
)
_SELECTED = ", ".join(f"l.{key}" for _title, key in CSV_COLUMNS)
_REASONS = [key for _title, key in CSV_COLUMNS].index("reasons")
_CONTACTED = [key for _title, key in CSV_COLUMNS].index("contacted")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # Excel reads the accents as UTF-8
BUFFER = 1 << 16  # bytes written to the pipe at a time
POSTGRES_BATCH = 5000  # rows a server-side cursor sends at a time


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if isinstance(value, bool):
        value = "sí" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _cells(row: tuple[Any, ...]) -> list[str]:
    cells = list(row)
    cells[_REASONS] = json.loads(cells[_REASONS] or "[]")
    cells[_CONTACTED] = bool(cells[_CONTACTED])
    return [safe_cell(v) for v in cells]


def write(rows: Iterable[tuple[Any, ...]], out: IO[str]) -> int:
    """The header and `rows` (CSV_COLUMNS' values, in order) as CSV; how many rows. The
    first row is read before anything is written: a store that cannot be read writes
    nothing (the ingress answers 503)."""
    rows = iter(rows)
    first = next(rows, None)
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(BOM)
    writer.writerow([title for title, _key in CSV_COLUMNS])
    if first is None:
        return 0
    writer.writerow(_cells(first))
    count = 1
    for row in rows:
        writer.writerow(_cells(row))
        count += 1
    return count


def request(f: LeadFilter, database_path: Path, database_url: str | None) -> bytes:
    """What the ingress writes on the process's stdin."""
    return json.dumps(
        {"database_path": str(database_path), "database_url": database_url, "filter": asdict(f)}
    ).encode()


def _sqlite_rows(path: Path, f: LeadFilter) -> Iterator[tuple[Any, ...]]:
    from .readers import sqlite_reader

    db = sqlite_reader(path)
    try:
        sql, params = export_rows("sqlite", f, _SELECTED)
        yield from db.connection.execute(sql, params)
    finally:
        db.close()


def _postgres_rows(url: str, f: LeadFilter) -> Iterator[tuple[Any, ...]]:
    import psycopg

    from .postgres import to_pyformat

    sql, params = export_rows("postgresql", f, _SELECTED)
    with psycopg.connect(url) as conn:
        conn.read_only = True
        with conn.cursor(name="lead_csv") as cursor:
            cursor.itersize = POSTGRES_BATCH
            cursor.execute(to_pyformat(sql), params)
            yield from cursor


EXPORT_NICENESS = 10  # below the suite's channels when they want the same core


def main() -> int:
    os.nice(EXPORT_NICENESS)
    asked = json.loads(sys.stdin.buffer.read())
    f = LeadFilter(**asked["filter"])
    pipe = open(sys.stdout.fileno(), "wb", buffering=BUFFER, closefd=False)
    out = io.TextIOWrapper(pipe, encoding="utf-8", newline="")
    try:
        url = asked.get("database_url")
        rows = _postgres_rows(url, f) if url else _sqlite_rows(Path(asked["database_path"]), f)
        write(rows, out)
        out.flush()
    except BrokenPipeError:  # the ingress stopped reading (the owner went away)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        return 0
    except Exception as exc:  # reported to the ingress by its kind only
        print(f"lead_csv failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

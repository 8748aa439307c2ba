"""`ia-comercial import-legacy`: the original system's database, built here with its own
schema (the later columns included), imported twice — the second run adds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

from store import lead_reports
from store.db import Database, open_database
from tests.conftest import BACKENDS, fresh_store_and_env

ORIGINAL_SCHEMA = """
CREATE TABLE leads (
  id INTEGER PRIMARY KEY AUTOINCREMENT, nombre TEXT, telefono TEXT, servicio TEXT,
  comuna TEXT, urgencia TEXT, estado TEXT DEFAULT 'frio', contactado INTEGER DEFAULT 0,
  notas TEXT, fecha_creacion DATETIME DEFAULT CURRENT_TIMESTAMP,
  fecha_actualizacion DATETIME DEFAULT CURRENT_TIMESTAMP,
  canal TEXT DEFAULT 'web', ultima_interaccion DATETIME, fecha_contacto DATETIME,
  instagram_id TEXT
);
CREATE TABLE conversaciones (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT UNIQUE NOT NULL, lead_id INTEGER,
  canal TEXT DEFAULT 'web', historial TEXT, estado TEXT DEFAULT 'activo',
  fecha_creacion DATETIME DEFAULT CURRENT_TIMESTAMP,
  fecha_actualizacion DATETIME DEFAULT CURRENT_TIMESTAMP, completed INTEGER DEFAULT 0,
  FOREIGN KEY (lead_id) REFERENCES leads(id)
);
CREATE TABLE follow_ups (
  id INTEGER PRIMARY KEY AUTOINCREMENT, lead_id INTEGER, type TEXT, status TEXT,
  message TEXT, fecha_envio DATETIME DEFAULT CURRENT_TIMESTAMP
);
"""


def original_database(path: Path) -> None:
    db = apsw.Connection(str(path))
    with db:
        db.execute(ORIGINAL_SCHEMA)
        db.execute(
            "INSERT INTO leads (nombre, telefono, servicio, comuna, urgencia, estado, contactado,"
            " notas, fecha_creacion, canal, instagram_id) VALUES"
            " ('Marta Díaz', '+56987654321', 'Instalación', 'Ñuñoa', 'hoy', 'caliente', 1,"
            "  'llamar, \"urgente\"', '2025-12-01 14:03:00', 'whatsapp', NULL),"
            " ('Pía', NULL, NULL, NULL, NULL, 'tibio', 0, NULL, '2025-12-02 09:00:00',"
            "  'instagram', '178414000001'),"
            " ('?', NULL, NULL, NULL, NULL, 'raro', 0, NULL, 'no es fecha', 'fax', NULL)"
        )
        history = [
            {"role": "system", "content": "Eres un asistente..."},
            {"role": "user", "content": "Hola, necesito instalar un aire 😀"},
            {"role": "assistant", "content": "¡Hola! ¿Cómo te llamas?"},
            {"role": "user", "content": "Marta"},
        ]
        db.execute(
            "INSERT INTO conversaciones (session_id, lead_id, canal, historial, fecha_creacion)"
            " VALUES ('56987654321', 1, 'whatsapp', ?, '2025-12-01 14:00:00'),"
            " ('web-x', NULL, 'web', 'not json', '2025-12-03 10:00:00')",
            (json.dumps(history, ensure_ascii=False),),
        )
        db.execute(
            "INSERT INTO follow_ups (lead_id, type, status, message, fecha_envio) VALUES"
            " (1, 'whatsapp', 'sent', 'Hola Marta, ¿seguimos?', '2025-12-02 10:00:00')"
        )
    db.close()


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "DATABASE_URL"))}
    env["DATABASE_PATH"] = str(tmp_path / "db" / "leads.db")
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=tmp_path,  # relative defaults (logs, backups, .env) resolve in the test's folder
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_import_twice_adds_nothing_the_second_time(tmp_path: Path, backend: str) -> None:
    with (
        fresh_store_and_env(backend, tmp_path, pool_size=1) as (store, env),
        store.connection() as db,
    ):
        imported_twice(tmp_path, env, db)


def imported_twice(tmp_path: Path, env: dict[str, str], db: Database) -> None:
    legacy = tmp_path / "original.db"
    original_database(legacy)
    dry = cli(tmp_path, "import-legacy", str(legacy), "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing written" in dry.stdout and "leads: 3 imported" in dry.stdout
    assert db.scalar("SELECT count(*) FROM leads") == 0

    first = cli(tmp_path, "import-legacy", str(legacy), **env)
    assert first.returncode == 0, first.stderr
    assert "leads: 3 imported, 0 already there" in first.stdout
    assert "conversations: 2 imported (3 messages), 0 already there" in first.stdout
    assert "follow-ups: 1 imported" in first.stdout
    assert "conversation 2: its historial is not JSON" in first.stdout
    again = cli(tmp_path, "import-legacy", str(legacy), **env)
    assert "leads: 0 imported, 3 already there" in again.stdout
    assert "conversations: 0 imported (0 messages), 2 already there" in again.stdout

    found = lead_reports.search(db, lead_reports.LeadFilter(), 10)
    rows = found.rows
    assert found.total == 3
    marta = next(r for r in rows if r["name"] == "Marta Díaz")
    assert (marta["classification"], marta["channel"], marta["status"]) == (
        "caliente",
        "whatsapp",
        "contacted",
    )
    assert marta["created_at"] == "2025-12-01T14:03:00.000Z"
    odd = next(r for r in rows if r["name"] == "?")
    assert (odd["classification"], odd["channel"]) == ("frio", "web")  # mapped, not lost
    transcript = lead_reports.transcript(db, marta["id"])
    assert [(m["role"], m["content"]) for m in transcript] == [
        ("user", "Hola, necesito instalar un aire 😀"),  # emojis kept, system prompt not
        ("assistant", "¡Hola! ¿Cómo te llamas?"),
        ("user", "Marta"),
    ]
    assert db.scalar("SELECT count(*) FROM messages WHERE status = 'pending'") == 0
    assert db.scalar("SELECT count(*) FROM messages WHERE role = 'assistant'"
                     " AND classified_at IS NULL") == 0  # fmt: skip
    follow = db.one("SELECT status, reason FROM follow_ups")
    assert follow == {"status": "imported", "reason": "sent (whatsapp): Hola Marta, ¿seguimos?"}
    assert db.scalar(
        "SELECT lead_id FROM lead_identities WHERE kind = 'instagram' AND value = '178414000001'"
    )


def test_a_file_that_is_not_the_original_database_is_refused_clearly(tmp_path: Path) -> None:
    missing = cli(tmp_path, "import-legacy", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "nope.db: no such file" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("hola")
    r = cli(tmp_path, "import-legacy", str(junk))
    assert r.returncode == 2 and "not a SQLite database" in r.stderr
    empty = tmp_path / "empty.db"
    apsw.Connection(str(empty)).execute("CREATE TABLE otra (x)")
    r = cli(tmp_path, "import-legacy", str(empty))
    assert r.returncode == 2 and "no table 'leads'" in r.stderr
    assert "Traceback" not in r.stderr
    other = tmp_path / "other.db"
    apsw.Connection(str(other)).execute(
        "CREATE TABLE leads (codigo TEXT); INSERT INTO leads VALUES ('x')"
    )
    r = cli(tmp_path, "import-legacy", str(other))
    assert r.returncode == 2 and "not the original system's schema" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_store_file_that_is_no_database_is_told_in_one_line(tmp_path: Path) -> None:
    """`backup` and `import-legacy` on a DATABASE_PATH that holds something else: the file and
    SQLite's reason, exit 1, no traceback (backup raised one)."""
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "leads.db").write_text("no es una base de datos")
    original = tmp_path / "original.db"
    original_database(original)
    for args in (("backup",), ("import-legacy", str(original))):
        r = cli(tmp_path, *args, BACKUP_DIR=str(tmp_path / "backups"))
        assert r.returncode == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert f"store {tmp_path / 'db' / 'leads.db'}: file is not a database" in r.stderr


def test_import_creates_the_store_when_there_is_none_yet(tmp_path: Path) -> None:
    """A user's first command on a new server may be `import-legacy`: the SQLite store is
    created and migrated by it."""
    original = tmp_path / "original.db"
    original_database(original)
    r = cli(tmp_path, "import-legacy", str(original))
    assert r.returncode == 0, r.stderr
    db = open_database(tmp_path / "db" / "leads.db")
    try:
        assert db.scalar("SELECT count(*) FROM leads") == 3
    finally:
        db.close()
